"""Every metric of one cell, in pixels: pure geometry on a shapely shape.

`measure(shape)` takes a cell with its holes already cut out (a Polygon or
MultiPolygon). Lengths are in px, areas in px²; the caller scales them.

* Perimeter is the length of the outer outline; Perimeter with Holes adds the
  holes' outlines. Circularity, Compactness, Convexity and Sphericity use
  Perimeter.
* Feret diameters come from rotating calipers on the convex hull: Max is the
  largest distance between two hull vertices, Min the smallest width between
  two parallel supporting lines, Orthogonal the width perpendicular to Max.
* Major and Minor Axis Length belong to the ellipse with the same second
  central moments of area (as scikit-image's `regionprops` defines them).
"""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass, fields

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry


@dataclass(frozen=True, slots=True)
class Measures:
    area: float
    perimeter: float
    perimeter_with_holes: float
    equivalent_diameter: float  #: √(4A/π)
    circularity: float  #: 4πA/P², at most 1
    feret_max: float
    feret_min: float
    feret_orthogonal: float
    feret_aspect_ratio: float  #: Feret max / Feret min
    major_axis_length: float
    minor_axis_length: float
    bounding_box_width: float
    bounding_box_height: float
    extent: float  #: A / bounding-box area
    compactness: float  #: P²/(4πA)
    convexity: float  #: hull perimeter / P
    solidity: float  #: A / hull area
    sphericity: float  #: 2√(πA)/P = π · equivalent diameter / P = √circularity, 1 for a circle

    def values(self) -> tuple[float, ...]:
        return astuple(self)


MEASURE_NAMES = tuple(f.name for f in fields(Measures))


def measure(shape: BaseGeometry) -> Measures:
    """All metrics of a cell whose area is positive."""
    area = float(shape.area)
    parts = list(getattr(shape, "geoms", [shape]))
    perimeter = sum(part.exterior.length for part in parts)
    hull = shapely.convex_hull(shape)
    feret_max, feret_min, feret_orthogonal = calipers(np.asarray(hull.exterior.coords)[:-1])
    major, minor = axes(parts)
    x0, y0, x1, y1 = shape.bounds
    return Measures(
        area=area,
        perimeter=perimeter,
        perimeter_with_holes=float(shape.length),
        equivalent_diameter=math.sqrt(4 * area / math.pi),
        circularity=min(1.0, 4 * math.pi * area / perimeter**2),
        feret_max=feret_max,
        feret_min=feret_min,
        feret_orthogonal=feret_orthogonal,
        feret_aspect_ratio=feret_max / feret_min if feret_min > 0 else math.inf,
        major_axis_length=major,
        minor_axis_length=minor,
        bounding_box_width=x1 - x0,
        bounding_box_height=y1 - y0,
        extent=area / ((x1 - x0) * (y1 - y0)),
        compactness=perimeter**2 / (4 * math.pi * area),
        convexity=float(hull.length) / perimeter,
        solidity=area / float(hull.area),
        sphericity=min(1.0, 2 * math.sqrt(math.pi * area) / perimeter),
    )


def calipers(hull: np.ndarray) -> tuple[float, float, float]:
    """(Feret max, Feret min, width orthogonal to max) of a convex polygon given without its closing point.

    Rotating calipers: for each hull edge, a pointer walks forward to the vertex
    farthest from that edge's line. That distance is the caliper width flush with
    the edge (the smallest over all edges is the minimum width), and the edge's
    ends paired with that vertex (and its successor, for parallel edges) include
    every antipodal pair, among which lies the diameter.
    """
    points = [(float(x), float(y)) for x, y in hull]
    n = len(points)
    if n < 3:
        raise ValueError("a convex hull with positive area has at least 3 vertices")
    widest, narrowest, ends = 0.0, math.inf, (points[0], points[1])
    j = 1
    for i in range(n):
        (ax, ay), (bx, by) = points[i], points[(i + 1) % n]
        ex, ey = bx - ax, by - ay

        def height(k: int) -> float:
            px, py = points[k % n]
            return abs(ex * (py - ay) - ey * (px - ax))

        for _ in range(n):  # the height is unimodal along the hull: walk to its peak
            if height(j + 1) <= height(j):
                break
            j = (j + 1) % n
        narrowest = min(narrowest, height(j) / math.hypot(ex, ey))
        for p in (points[i], points[(i + 1) % n]):
            for q in (points[j], points[(j + 1) % n]):
                d = math.dist(p, q)
                if d > widest:
                    widest, ends = d, (p, q)
    (px, py), (qx, qy) = ends
    normal = np.array([-(qy - py), qx - px]) / widest
    spread = np.asarray(points) @ normal
    return widest, narrowest, max(narrowest, float(spread.max() - spread.min()))  # no width is below the minimum


def axes(parts: list) -> tuple[float, float]:
    """Major and minor axis length (4√λ of the area covariance) of polygons with holes."""
    area = sx = sy = sxx = syy = sxy = 0.0
    origin = np.asarray(parts[0].exterior.coords[0])
    for part in parts:
        oriented = shapely.orient_polygons(part)  # exterior counter-clockwise, holes clockwise
        for ring in (oriented.exterior, *oriented.interiors):
            xy = np.asarray(ring.coords) - origin
            x0, y0, x1, y1 = xy[:-1, 0], xy[:-1, 1], xy[1:, 0], xy[1:, 1]
            c = x0 * y1 - x1 * y0
            area += c.sum() / 2
            sx += ((x0 + x1) * c).sum() / 6
            sy += ((y0 + y1) * c).sum() / 6
            sxx += ((x0 * x0 + x0 * x1 + x1 * x1) * c).sum() / 12
            syy += ((y0 * y0 + y0 * y1 + y1 * y1) * c).sum() / 12
            sxy += ((x0 * y1 + 2 * x0 * y0 + 2 * x1 * y1 + x1 * y0) * c).sum() / 24
    cx, cy = sx / area, sy / area
    cov = np.array([[sxx / area - cx * cx, sxy / area - cx * cy], [sxy / area - cx * cy, syy / area - cy * cy]])
    low, high = np.clip(np.linalg.eigvalsh(cov), 0, None)
    return 4 * math.sqrt(high), 4 * math.sqrt(low)
