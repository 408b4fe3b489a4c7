"""The read-only picture of a project that one export works from.

The engine loads it from the store before the pipeline starts, so the pipeline
never touches the database and can run in a worker thread or process.

A polygon keeps its points as one small read-only float array rather than a
tuple of tuples: a 10,000-image project then fits in tens of megabytes, and
pickles cheaply when per-image work goes to a process pool. Points may be
given as any sequence of (x, y) pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Check:
    """What the export's one check of a polygon found (see `export/geometry.py`)."""

    defect: str | None  #: why every writer skips the polygon, or None when it encloses a proper region
    area: float  #: px²: an external polygon's with its holes cut out, a hole's own; 0 when skipped


@dataclass(frozen=True, slots=True, eq=False)
class PolygonData:
    id: str
    kind: Literal["external", "internal"]  #: internal polygons are holes
    points: np.ndarray  #: (n, 2) float64, read-only; built from any sequence of (x, y)
    parent_id: str | None = None  #: for a hole, the external polygon it lies in
    class_name: str = "cell"

    def __post_init__(self) -> None:
        object.__setattr__(self, "points", as_points(self.points))


@dataclass(frozen=True, slots=True)
class ImageData:
    id: str
    name: str  #: the uploaded file name, e.g. "spheroid_01.png"
    width: int
    height: int
    path: Path  #: the stored file
    polygons: tuple[PolygonData, ...] = ()
    checks: dict[str, Check] | None = field(default=None, compare=False)  #: by polygon id, once the export has checked them

    @property
    def stem(self) -> str:
        return Path(self.name).stem

    def externals(self) -> list[PolygonData]:
        return [p for p in self.polygons if p.kind == "external"]

    def holes_of(self, polygon_id: str) -> list[PolygonData]:
        return [p for p in self.polygons if p.kind == "internal" and p.parent_id == polygon_id]


@dataclass(frozen=True, slots=True)
class ProjectSnapshot:
    id: str
    name: str
    owner_email: str = ""
    images: tuple[ImageData, ...] = field(default_factory=tuple)


def as_points(points: Sequence[Point] | np.ndarray) -> np.ndarray:
    """An (n, 2) read-only float64 array of the points."""
    if _immutable_pairs(points):
        return points  # e.g. the store's blobs (store/points.py): nothing can change them, no copy needed
    array = np.array(points, dtype=np.float64)
    if array.size == 0:
        array = array.reshape(0, 2)
    elif array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"points must be (x, y) pairs, got an array of shape {array.shape}")
    array.flags.writeable = False
    return array


def _immutable_pairs(points: object) -> bool:
    """An (n, 2) float64 array over memory nobody can write: a read-only view of `bytes`."""
    if not (isinstance(points, np.ndarray) and points.dtype == np.float64 and points.ndim == 2
            and points.shape[1] == 2 and not points.flags.writeable):
        return False
    base = points.base
    while isinstance(base, np.ndarray):
        if base.flags.writeable:
            return False
        base = base.base
    return isinstance(base, bytes)
