"""GeoJSON for QuPath: `annotations/geojson/<image stem>.geojson`.

One FeatureCollection per image, one Feature per cell: a Polygon whose first
ring is the outline and the others its holes (a MultiPolygon where the holes
cut the cell in pieces), in pixel coordinates of the image as QuPath reads
them (origin at the top-left corner, x to the right, y down). Rings follow
RFC 7946's winding (exterior counter-clockwise, holes clockwise, in x-y
terms). Each feature's properties are what QuPath's "Import objects" reads:
`objectType` "annotation", `name` "Cell <n>" (its number on the
visualizations and in the metrics) and `classification` `{name, color}` by
class name; the feature's `id` is the polygon's id.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any, ClassVar

from shapely.geometry import MultiPolygon, Polygon, mapping
from shapely.geometry.polygon import orient

from exportd.export.archive import ArchiveWriter, file_stem, image_file_names
from exportd.export.geometry import Cell, cells_of
from exportd.export.source import ImageData, ProjectSnapshot
from exportd.export.workers import Workers

if TYPE_CHECKING:
    from exportd.domain.options import ExportOptions
    from exportd.export.context import StepContext
    from exportd.export.formats import Group, ItemProgress

FOLDER = "annotations/geojson/"


class GeoJsonWriter:
    name: ClassVar[str] = "geojson"
    group: ClassVar[Group] = "annotations"
    title: ClassVar[str] = "GeoJSON for QuPath (one FeatureCollection per image, holes kept)"
    path: ClassVar[str] = FOLDER

    def write(
        self,
        project: ProjectSnapshot,
        options: ExportOptions,
        archive: ArchiveWriter,
        ctx: StepContext,
        progress: ItemProgress,
        workers: Workers,
    ) -> None:
        names = image_file_names(project.images)
        for image, (text, warnings) in workers.map(image_features, project.images):
            for message in warnings:
                ctx.warn(message)
            archive.write_text(f"{FOLDER}{file_stem(names[image.id])}.geojson", text)
            progress.done(f"GeoJSON: {image.name}", image.name)


def image_features(image: ImageData) -> tuple[str, list[str]]:
    """One image's FeatureCollection as JSON text, and its warnings (runs in a worker process)."""
    cells, warnings = cells_of(image)
    collection = {"type": "FeatureCollection", "features": [feature(cell) for cell in cells]}
    return json.dumps(collection, ensure_ascii=False, separators=(",", ":")), warnings


def feature(cell: Cell) -> dict[str, Any]:
    shape = cell.shape
    if isinstance(shape, Polygon):
        shape = orient(shape, 1.0)
    else:
        shape = MultiPolygon([orient(part, 1.0) for part in getattr(shape, "geoms", []) if isinstance(part, Polygon)])
    return {
        "type": "Feature",
        "id": cell.polygon.id,
        "geometry": _lists(mapping(shape)),
        "properties": {
            "objectType": "annotation",
            "name": f"Cell {cell.number}",
            "classification": {"name": cell.polygon.class_name, "color": class_color(cell.polygon.class_name)},
            "isLocked": False,
        },
    }


def class_color(name: str) -> list[int]:
    """A stable colour for a class name (QuPath's `[r, g, b]`)."""
    digest = hashlib.sha256(name.encode()).digest()
    return [64 + digest[0] % 192, 64 + digest[1] % 192, 64 + digest[2] % 192]


def _lists(geometry: dict[str, Any]) -> dict[str, Any]:
    """shapely's mapping uses tuples; JSON arrays of [x, y] read the same, but lists keep it plain."""
    def convert(value: Any) -> Any:
        return [convert(v) for v in value] if isinstance(value, (tuple, list)) else value

    return {"type": geometry["type"], "coordinates": convert(geometry["coordinates"])}
