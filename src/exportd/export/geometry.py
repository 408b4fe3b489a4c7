"""Which polygons enclose a region, and each cell with its holes cut out.

Every polygon of an export is checked once (`check_project`, before the first
writer runs): its coordinates must be finite and near the image, it must have
3 distinct points, and its outline must not cross itself. The checks travel
with the image (`ImageData.checks`), so the writers that annotate, measure or
draw cells, each through `cells_of`, skip the same polygons without checking
them again, number the cells the same way (the number drawn on a visualization
is the `Polygon` column of the metrics), and word their warnings identically
(the pipeline keeps one copy of each).

Nothing is repaired: repairing a self-intersecting outline (`make_valid`) costs
time that grows with the square of its crossings, which one client's polygon
could make unbounded. GEOS's validity test stops at the first crossing; at
the limits of `exportd.domain.limits` it takes milliseconds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from exportd.domain.limits import coordinate_range, printable
from exportd.export.source import Check, ImageData, PolygonData, ProjectSnapshot

FEWER_THAN_3 = "fewer than 3 distinct points"
NOT_FINITE = "coordinates that are not finite numbers"
FAR_OUTSIDE = "coordinates far outside the image"
ZERO_AREA = "zero area"
SELF_INTERSECTING = "a self-intersecting outline"
NOTHING_LEFT = "no area left once its holes are cut out"
MAX_IDS_LISTED = 5
UNPRINTABLE = "\ufffd"  #: stands for each control character of a class name stored before they were refused


@dataclass(frozen=True, slots=True)
class Cell:
    """One usable external polygon of an image."""

    number: int  #: 1, 2, ... over the image's usable cells, in polygon order
    polygon: PolygonData
    holes: tuple[PolygonData, ...]  #: its usable holes
    shape: BaseGeometry  #: the outline minus its holes (a Polygon, or a MultiPolygon if a hole cuts it in two)


def defect(points: np.ndarray, width: float, height: float) -> str | None:
    """Why an outline does not enclose a proper region of a `width` × `height` image, or None when it does."""
    if not np.isfinite(points).all():
        return NOT_FINITE
    if not _three_distinct(points):
        return FEWER_THAN_3
    (low_x, high_x), (low_y, high_y) = coordinate_range(width), coordinate_range(height)
    if (points[:, 0].min() < low_x or points[:, 0].max() > high_x
            or points[:, 1].min() < low_y or points[:, 1].max() > high_y):
        return FAR_OUTSIDE
    if shapely.is_valid(Polygon(points)):
        return None
    return ZERO_AREA if _collinear(points) else SELF_INTERSECTING


def check_image(image: ImageData) -> dict[str, Check]:
    """Every polygon's defect and area (runs in a worker process; once per image per export).

    A hole's area is its own; an external polygon's is what is left once its
    usable holes are cut out (and the cell is unusable when nothing is left).
    """
    problems = {p.id: defect(p.points, image.width, image.height) for p in image.polygons}
    checks: dict[str, Check] = {}
    holes: dict[str | None, list[PolygonData]] = defaultdict(list)
    for polygon in image.polygons:
        if polygon.kind == "internal":
            problem = problems[polygon.id]
            checks[polygon.id] = Check(problem, 0.0 if problem else float(shapely.area(Polygon(polygon.points))))
            if problem is None:
                holes[polygon.parent_id].append(polygon)
    for polygon in image.externals():
        problem, area = problems[polygon.id], 0.0
        if problem is None:
            area = float(_cut(polygon, holes.get(polygon.id, [])).area)
            problem = None if area > 0 else NOTHING_LEFT
        checks[polygon.id] = Check(problem, area)
    return checks


def check_project(project: ProjectSnapshot, workers) -> tuple[ProjectSnapshot, list[str]]:
    """The project with every image's polygons checked, and a warning per image whose class names
    had control characters (stored before they were refused; replaced by `UNPRINTABLE` here)."""
    warnings = []
    images = []
    for image, checks in workers.map(check_image, project.images):
        image, renamed = _printable_classes(image)
        if renamed:
            warnings.append(f"{image.name}: replaced control characters in the class names of {_ids(renamed)}")
        images.append(replace(image, checks=checks))
    return replace(project, images=tuple(images)), warnings


def cells_of(image: ImageData) -> tuple[list[Cell], list[str]]:
    """The image's usable cells and one warning per kind of problem, naming the polygons."""
    if not image.polygons:
        return [], [f"{image.name}: no polygons to annotate, measure or draw"]
    checks = image.checks if image.checks is not None else check_image(image)
    skipped: dict[str, list[str]] = defaultdict(list)
    ignored: dict[str, list[str]] = defaultdict(list)
    holes: dict[str | None, list[PolygonData]] = defaultdict(list)
    for hole in image.polygons:
        if hole.kind == "internal":
            problem = checks[hole.id].defect
            if problem is None:
                holes[hole.parent_id].append(hole)
            else:
                ignored[problem].append(hole.id)
    cells: list[Cell] = []
    externals = set()
    for polygon in image.externals():
        externals.add(polygon.id)
        problem = checks[polygon.id].defect
        if problem is None:
            own = holes.get(polygon.id, [])
            cells.append(Cell(len(cells) + 1, polygon, tuple(own), _cut(polygon, own)))
        else:
            skipped[problem].append(polygon.id)
    orphans = [h.id for parent, own in holes.items() if parent not in externals for h in own]
    warnings = [_warning(image.name, "skipped", "polygon", reason, ids) for reason, ids in skipped.items()]
    warnings += [_warning(image.name, "ignored", "hole", reason, ids) for reason, ids in ignored.items()]
    if orphans:
        warnings.append(f"{image.name}: ignored {_count(orphans, 'hole')} whose cell is missing ({_ids(orphans)})")
    return cells, warnings


def own_outline(image: ImageData, polygon: PolygonData) -> Polygon | None:
    """The region the polygon's own outline encloses (holes not cut out), or None when it encloses none."""
    checks = image.checks if image.checks is not None else check_image(image)
    return Polygon(polygon.points) if checks[polygon.id].defect in (None, NOTHING_LEFT) else None


def cell_shape(image: ImageData, polygon: PolygonData) -> BaseGeometry | None:
    """An external polygon minus its usable holes, or None when every writer skips it."""
    checks = image.checks if image.checks is not None else check_image(image)
    if checks[polygon.id].defect is not None:
        return None
    own = [h for h in image.holes_of(polygon.id) if checks[h.id].defect is None]
    return _cut(polygon, own)


def polygon_area(image: ImageData, polygon: PolygonData) -> float:
    """Area in px²: an external polygon's with its holes subtracted, a hole's own; 0 for a polygon
    that every writer skips."""
    checks = image.checks if image.checks is not None else check_image(image)
    return checks[polygon.id].area


def _cut(polygon: PolygonData, holes: list[PolygonData]) -> BaseGeometry:
    """A valid outline minus valid holes: a Polygon or a MultiPolygon (possibly empty)."""
    shape: BaseGeometry = Polygon(polygon.points)
    if holes:
        shape = shape.difference(shapely.union_all([Polygon(h.points) for h in holes]))
        if not isinstance(shape, Polygon | MultiPolygon):  # a cut can leave slivers of lower dimension
            shape = MultiPolygon([part for part in _parts(shape) if isinstance(part, Polygon)])
    return shape


def _parts(shape: BaseGeometry) -> Iterator[BaseGeometry]:
    for part in getattr(shape, "geoms", [shape]):
        yield from (_parts(part) if hasattr(part, "geoms") else [part])


def _three_distinct(points: np.ndarray) -> bool:
    """At least 3 distinct points, in linear time (no sort)."""
    if len(points) < 3:
        return False
    other = (points != points[0]).any(axis=1)
    if not other.any():
        return False
    second = points[np.argmax(other)]
    return bool((other & (points != second).any(axis=1)).any())


def _collinear(points: np.ndarray) -> bool:
    """Whether every point lies on one line (the outline then encloses nothing)."""
    offsets = points - points[0]
    far = offsets[np.argmax(np.abs(offsets).sum(axis=1))]
    cross = offsets[:, 0] * far[1] - offsets[:, 1] * far[0]
    scale = float(np.abs(offsets).max()) or 1.0
    return bool(np.abs(cross).max() <= 1e-9 * scale * scale)


def _printable_classes(image: ImageData) -> tuple[ImageData, list[str]]:
    renamed = [p for p in image.polygons if not printable(p.class_name)]
    if not renamed:
        return image, []
    fixed = {p.id: replace(p, class_name="".join(c if c.isprintable() else UNPRINTABLE for c in p.class_name))
             for p in renamed}
    return replace(image, polygons=tuple(fixed.get(p.id, p) for p in image.polygons)), [p.id for p in renamed]


def _warning(image: str, verb: str, noun: str, reason: str, ids: list[str]) -> str:
    return f"{image}: {verb} {_count(ids, noun)} with {reason} ({_ids(ids)})"


def _count(ids: list[str], noun: str) -> str:
    return f"{len(ids)} {noun}{'s' if len(ids) != 1 else ''}"


def _ids(ids: list[str]) -> str:
    shown = ", ".join(ids[:MAX_IDS_LISTED])
    return shown if len(ids) <= MAX_IDS_LISTED else f"{shown} and {len(ids) - MAX_IDS_LISTED} more"
