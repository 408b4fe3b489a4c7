"""The read-only picture of a project that one export works from.

The engine loads it from the store before the pipeline starts, so the pipeline
never touches the database and can run in a worker thread or process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class PolygonData:
    id: str
    kind: Literal["external", "internal"]  #: internal polygons are holes
    points: tuple[Point, ...]
    parent_id: str | None = None  #: for a hole, the external polygon it lies in
    class_name: str = "cell"


@dataclass(frozen=True, slots=True)
class ImageData:
    id: str
    name: str  #: the uploaded file name, e.g. "spheroid_01.png"
    width: int
    height: int
    path: Path  #: the stored file
    polygons: tuple[PolygonData, ...] = ()

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
