"""Cell geometry shared by the format writers: an outline, and a cell with its holes cut out."""

from __future__ import annotations

import math
from collections.abc import Sequence

import shapely
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from exportd.export.source import ImageData, Point, PolygonData


def outline(points: Sequence[Point]) -> BaseGeometry | None:
    """The area a closed outline encloses, or None when it encloses nothing.

    Self-intersecting outlines are repaired (a bow tie becomes two triangles),
    which matches the even-odd filling a rasteriser applies.
    """
    if len(set(points)) < 3 or not all(math.isfinite(v) for point in points for v in point):
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
