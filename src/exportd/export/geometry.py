"""Which polygons enclose a region, and each cell with its holes cut out.

Every writer that annotates, measures or draws cells goes through `cells_of`,
so they all skip the same polygons, number the cells the same way (the number
drawn on a visualization is the `Polygon` column of the metrics), and word
their warnings identically (the pipeline keeps one copy of each).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from exportd.export.source import ImageData, Point, PolygonData

FEWER_THAN_3 = "fewer than 3 distinct points"
NOT_FINITE = "coordinates that are not finite numbers"
ZERO_AREA = "zero area"
SELF_INTERSECTING = "a self-intersecting outline"
NOTHING_LEFT = "no area left once its holes are cut out"
MAX_IDS_LISTED = 5


@dataclass(frozen=True, slots=True)
class Cell:
    """One usable external polygon of an image."""

    number: int  #: 1, 2, ... over the image's usable cells, in polygon order
    polygon: PolygonData
    holes: tuple[PolygonData, ...]  #: its usable holes
    shape: BaseGeometry  #: the outline minus its holes (a Polygon, or a MultiPolygon if a hole cuts it in two)


def defect(points: np.ndarray) -> str | None:
    """Why an outline does not enclose a proper region, or None when it does."""
    if not np.isfinite(points).all():
        return NOT_FINITE
    if len(points) < 3 or len(np.unique(points, axis=0)) < 3:
        return FEWER_THAN_3
    ring = Polygon(points)
    if ring.is_valid:
        return None
    return ZERO_AREA if shapely.make_valid(ring).area <= 0 else SELF_INTERSECTING


def cells_of(image: ImageData) -> tuple[list[Cell], list[str]]:
    """The image's usable cells and one warning per kind of problem, naming the polygons."""
    if not image.polygons:
        return [], [f"{image.name}: no polygons to annotate, measure or draw"]
    skipped: dict[str, list[str]] = defaultdict(list)
    ignored: dict[str, list[str]] = defaultdict(list)
    holes: dict[str | None, list[PolygonData]] = defaultdict(list)
    for hole in image.polygons:
        if hole.kind == "internal":
            problem = defect(hole.points)
            if problem is None:
                holes[hole.parent_id].append(hole)
            else:
                ignored[problem].append(hole.id)
    cells: list[Cell] = []
    externals = set()
    for polygon in image.externals():
        externals.add(polygon.id)
        problem = defect(polygon.points)
        own = holes.get(polygon.id, [])
        shape: BaseGeometry = Polygon(polygon.points) if problem is None else Polygon()
        if problem is None and own:
            shape = shape.difference(shapely.union_all([Polygon(h.points) for h in own]))
            problem = None if shape.area > 0 else NOTHING_LEFT
        if problem is None:
            cells.append(Cell(len(cells) + 1, polygon, tuple(own), shape))
        else:
            skipped[problem].append(polygon.id)
    orphans = [h.id for parent, own in holes.items() if parent not in externals for h in own]
    warnings = [_warning(image.name, "skipped", "polygon", reason, ids) for reason, ids in skipped.items()]
    warnings += [_warning(image.name, "ignored", "hole", reason, ids) for reason, ids in ignored.items()]
    if orphans:
        warnings.append(f"{image.name}: ignored {_count(orphans, 'hole')} whose cell is missing ({_ids(orphans)})")
    return cells, warnings


def outline(points: Sequence[Point] | np.ndarray) -> BaseGeometry | None:
    """The area a closed outline encloses, or None when it encloses nothing.

    Self-intersecting outlines are repaired (a bow tie becomes two triangles);
    only the project's own JSON, which keeps every polygon, reports such areas.
    """
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    if len(np.unique(points, axis=0)) < 3 or not np.isfinite(points).all():
        return None
    shape = shapely.make_valid(Polygon(points))
    return shape if shape.area > 0 else None


def cell_shape(image: ImageData, polygon: PolygonData) -> BaseGeometry | None:
    """An external polygon minus its holes, or None when the outline is degenerate."""
    shape = outline(polygon.points)
    if shape is None:
        return None
    for hole in image.holes_of(polygon.id):
        cut = outline(hole.points)
        if cut is not None:
            shape = shape.difference(cut)
    return shape


def polygon_area(image: ImageData, polygon: PolygonData) -> float:
    """Area in px²: an external polygon's with its holes subtracted, a hole's own."""
    shape = cell_shape(image, polygon) if polygon.kind == "external" else outline(polygon.points)
    return 0.0 if shape is None else float(shape.area)


def _warning(image: str, verb: str, noun: str, reason: str, ids: list[str]) -> str:
    return f"{image}: {verb} {_count(ids, noun)} with {reason} ({_ids(ids)})"


def _count(ids: list[str], noun: str) -> str:
    return f"{len(ids)} {noun}{'s' if len(ids) != 1 else ''}"


def _ids(ids: list[str]) -> str:
    shown = ", ".join(ids[:MAX_IDS_LISTED])
    return shown if len(ids) <= MAX_IDS_LISTED else f"{shown} and {len(ids) - MAX_IDS_LISTED} more"
