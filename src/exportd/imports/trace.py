"""Instance labels to polygons with holes, traced with scikit-image.

Each label's pixels are outlined along the 0.5 iso-line between pixel centres
(marching squares, `skimage.measure.find_contours`), the label's pixels
8-connected as `skimage.measure.label` sees them, its holes 4-connected. In
exportd's coordinates pixel (row, col) covers [col, col + 1] × [row, row + 1],
so a contour point (r, c) is (c + 0.5, r + 0.5), and a cell at the image's
border is outlined along the border itself.

The outline separates the label's pixel centres from every other pixel centre,
so rasterising it at pixel centres (as the COCO and mask writers do) gives back
exactly the label's pixels. Points in the middle of straight runs are dropped (they lie
exactly on the line through their neighbours: a tolerance of 0 px, see
`_corners`), which moves no pixel centre across the outline. A polygon with more points than its budget
is simplified further (Douglas-Peucker, `skimage.measure.approximate_polygon`),
the tolerance doubling from `COARSE_TOLERANCE` until it fits, and the image gets
a warning.

Every process that traces pays for what it imports (the server, and each
process of its pool, which traces for it), so this module needs no SciPy for
the usual work (`boxes` finds each label's bounding box, as
`scipy.ndimage.find_objects` would, saving 30 MB a process), and imports
scikit-image when it first traces, and Douglas-Peucker only when an outline
must be simplified (its module brings SciPy's signal and stats packages, 55 MB).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

TOLERANCE = 0.0  #: px: only points on straight runs go
COARSE_TOLERANCE = 0.5  #: px: the first tolerance tried when a polygon has more points than its budget
MAX_TOLERANCE = 64.0


@dataclass(slots=True)
class Region:
    """One connected part of a label: its outline and its holes, in exportd's (x, y) coordinates."""

    label: int
    outline: np.ndarray  #: (n, 2), open (the first point is not repeated at the end)
    holes: list[np.ndarray] = field(default_factory=list)
    tolerance: float = TOLERANCE  #: the tolerance it was simplified with


def regions(labels: np.ndarray, *, max_points: int | None = None) -> Iterator[Region]:
    """The regions of every non-zero label of a 2-D integer image, in label order.

    `max_points` bounds the points of each outline and each hole.
    """
    from skimage.measure import find_contours

    if labels.ndim != 2:
        raise ValueError("a label image has two dimensions")
    for label, box in boxes(labels):
        yield from _label_regions(labels, label, box, max_points, find_contours)


def boxes(labels: np.ndarray) -> Iterator[tuple[int, tuple[slice, slice]]]:
    """(label, (rows, columns)) of every non-zero label of a 2-D image, in label order: the bounding
    box of its pixels, as `scipy.ndimage.find_objects` gives it for the labels present.

    From the image's runs (a run: pixels of one value in one row), so the work is one pass over the
    pixels and then over the runs, and SciPy's 30 MB are not needed.
    """
    height, width = labels.shape
    if not labels.size:
        return
    flat = np.ascontiguousarray(labels).reshape(-1)
    starting = np.empty(flat.size, dtype=bool)  # a run starts where the value changes, and at each row
    starting[0] = True
    np.not_equal(flat[1:], flat[:-1], out=starting[1:])
    starting[::width] = True
    starts = np.flatnonzero(starting)
    ends = np.append(starts[1:], flat.size) - 1  # each run's last pixel, in its own row
    values = flat[starts]
    cell = values != 0
    starts, ends, values = starts[cell], ends[cell], values[cell]
    if not values.size:
        return
    order = np.argsort(values, kind="stable")
    starts, ends, values = starts[order], ends[order], values[order]
    rows, first = np.divmod(starts, width)
    last = ends - rows * width
    present, where = np.unique(values, return_index=True)
    top, bottom = np.minimum.reduceat(rows, where), np.maximum.reduceat(rows, where)
    left, right = np.minimum.reduceat(first, where), np.maximum.reduceat(last, where)
    for label, r0, r1, c0, c1 in zip(present.tolist(), top.tolist(), bottom.tolist(), left.tolist(), right.tolist(),
                                     strict=True):
        yield label, (slice(r0, r1 + 1), slice(c0, c1 + 1))


def _label_regions(labels: np.ndarray, label: int, box: tuple[slice, slice], max_points: int | None,
                   find_contours: Callable[..., list[np.ndarray]]) -> Iterator[Region]:
    offset = (box[1].start - 0.5, box[0].start - 0.5)  # (r, c) in the padded crop -> (x, y) in the image
    window = labels[box]
    crop = np.zeros((window.shape[0] + 2, window.shape[1] + 2), dtype=np.uint8)  # padded: contours close
    np.equal(window, label, out=crop[1:-1, 1:-1], casting="unsafe")
    outlines: list[np.ndarray] = []
    holes: list[np.ndarray] = []
    for contour in find_contours(crop, 0.5, fully_connected="high", positive_orientation="high"):
        if len(contour) < 4:  # a closed contour repeats its first point
            continue
        ring = _corners(contour)[:, ::-1] + offset
        (outlines if _signed_area(contour) > 0 else holes).append(ring)
    if not outlines:
        return
    found = [Region(label, ring) for ring in outlines]
    for hole in holes:
        owner = found[0] if len(found) == 1 else _owner(found, hole)
        if owner is not None:
            owner.holes.append(hole)
    for region in found:
        region.outline, region.tolerance = simplified(region.outline, max_points)
        region.holes = [simplified(hole, max_points)[0] for hole in region.holes]
        yield region


def simplified(ring: np.ndarray, max_points: int | None = None, *,
               tolerance: float | None = None) -> tuple[np.ndarray, float] | np.ndarray:
    """With `tolerance`: the ring simplified with it (Douglas-Peucker, at least 3 points kept).

    Else: the ring (without its points on straight runs), coarser if it has more than `max_points`,
    and the tolerance used.
    """
    if tolerance is not None:
        coarse = _douglas_peucker(np.vstack([ring, ring[:1]]), tolerance)[:-1]
        return coarse if len(coarse) >= 3 else ring
    used = TOLERANCE
    while max_points is not None and len(ring) > max_points and used < MAX_TOLERANCE:
        used = COARSE_TOLERANCE if used < COARSE_TOLERANCE else used * 2
        ring = _douglas_peucker(np.vstack([ring, ring[:1]]), used)[:-1]
    return ring, used


def _douglas_peucker(coords: np.ndarray, tolerance: float) -> np.ndarray:
    from skimage.measure import approximate_polygon

    return approximate_polygon(coords, tolerance)


def _corners(contour: np.ndarray) -> np.ndarray:
    """The points of a closed marching-squares contour where it turns (the last point, the first
    repeated, dropped).

    On a binary image every step of such a contour crosses one cell: (±1, 0), (0, ±1) or
    (±0.5, ±0.5). Two steps are on one line exactly when they are equal, so a point between two
    equal steps is dropped without any tolerance.
    """
    steps = np.diff(contour, axis=0)
    turns = np.empty(len(steps), dtype=bool)
    turns[1:] = (steps[1:] != steps[:-1]).any(axis=1)
    turns[0] = (steps[0] != steps[-1]).any()
    return contour[:-1][turns] if turns.sum() >= 3 else contour[:-1]


def _signed_area(contour: np.ndarray) -> float:
    """Twice the signed area of a closed (r, c) contour: positive around a region of high values."""
    r, c = contour[:, 0], contour[:, 1]
    return float(np.dot(r[:-1], c[1:]) - np.dot(r[1:], c[:-1]))


def _owner(found: list[Region], hole: np.ndarray) -> Region | None:
    from shapely import Point, Polygon

    probe = Point(*hole[0])
    for region in found:
        if Polygon(region.outline).covers(probe):
            return region
    return None
