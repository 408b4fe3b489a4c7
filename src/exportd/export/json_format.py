"""The project's own JSON: `annotations/json/segmentation_data.json`.

The layout is the replaced platform's (`convertToJSON`), field for field, so
scripts written for it read this file unchanged::

    {"metadata": {"version", "created", "imageCount", "format": "custom_json", …},
     "images": [{"id", "index", "filename", "dimensions": {"width", "height"},
                 "segmentation": {"cellCount", "timestamp",
                                  "polygons": {"external": [{"id", "points": [{"x", "y"}], "area",
                                                             "perimeter", "boundingBox", "centroid", …}],
                                               "internal": [{"id", "points", "area", "perimeter", …}]},
                                  "statistics": {"totalExternalPolygons", "totalInternalPolygons",
                                                 "totalArea"}}}]}

As there, `id` of a polygon is its number within its list (from 1), `area` is
the outline's own area (px²) and `perimeter` its length (px), `boundingBox` is
`[x, y, width, height]`, and `totalArea` is the cells' area with their holes
subtracted. exportd adds, without changing any of the above: `polygonId` (the
stored id), `className`, `netArea` (a cell's area minus its holes, as in the
metrics), and on a hole `parentId` (its cell's stored id) and `parent` (its
cell's `id` in this list, or null). Every polygon is kept as stored, holes
included, so the project can be rebuilt from the export. Images are streamed
one by one.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from shapely.geometry.base import BaseGeometry

from exportd import __version__
from exportd.export.archive import ArchiveWriter, image_file_names
from exportd.export.geometry import cell_shape, own_outline
from exportd.export.source import ImageData, PolygonData, ProjectSnapshot
from exportd.export.workers import Workers

if TYPE_CHECKING:
    from exportd.domain.options import ExportOptions
    from exportd.export.context import StepContext
    from exportd.export.formats import Group, ItemProgress

FORMAT_VERSION = "1.0"  #: the replaced platform's `metadata.version`
FORMAT_NAME = "custom_json"  #: its `metadata.format`
DECIMALS = 6  #: areas, perimeters, boxes and centroids; points are written as stored


class JsonWriter:
    name: ClassVar[str] = "json"
    group: ClassVar[Group] = "annotations"
    title: ClassVar[str] = "Segmentation data (JSON)"
    path: ClassVar[str] = "annotations/json/segmentation_data.json"

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
        created = archive.generated_at.isoformat()
        head = {
            "metadata": {
                "version": FORMAT_VERSION,
                "created": created,
                "imageCount": len(project.images),
                "format": FORMAT_NAME,
                "project": {"id": project.id, "name": project.name},
                "pixelToMicrometerScale": options.pixel_to_micrometer_scale,
                "exporter": f"exportd {__version__}",
            },
        }
        with archive.open_text(self.path) as out:
            out.write(json.dumps(head, ensure_ascii=False, indent=2)[:-2] + ',\n  "images": [')
            numbered = ((index, image, names[image.id]) for index, image in enumerate(project.images, 1))
            for number, ((_, image, _), text) in enumerate(workers.map(image_json, numbered, created), 1):
                out.write(("\n    " if number == 1 else ",\n    ") + text)
                progress.done(f"JSON: {image.name}", image.name)
            out.write("\n  ]\n}\n" if project.images else "]\n}\n")


def image_json(numbered: tuple[int, ImageData, str], timestamp: str) -> str:
    """One image and its polygons as one line of JSON (runs in a worker process)."""
    index, image, file_name = numbered
    return json.dumps(image_entry(image, index, file_name, timestamp), ensure_ascii=False)


def image_entry(image: ImageData, index: int, file_name: str, timestamp: str) -> dict[str, Any]:
    externals = image.externals()
    internals = [p for p in image.polygons if p.kind == "internal"]
    numbers = {polygon.id: n for n, polygon in enumerate(externals, 1)}
    cells = [_external(image, polygon, n) for n, polygon in enumerate(externals, 1)]
    holes = [_internal(image, polygon, n, numbers.get(polygon.parent_id or ""))
             for n, polygon in enumerate(internals, 1)]
    return {
        "id": image.id,
        "index": index,
        "filename": file_name,
        "dimensions": {"width": image.width, "height": image.height},
        "segmentation": {
            "cellCount": len(externals),
            "timestamp": timestamp,
            "polygons": {"external": cells, "internal": holes},
            "statistics": {
                "totalExternalPolygons": len(externals),
                "totalInternalPolygons": len(internals),
                "totalArea": _round(sum(cell["netArea"] or 0.0 for cell in cells)),
            },
        },
    }


def _external(image: ImageData, polygon: PolygonData, number: int) -> dict[str, Any]:
    points = polygon.points
    shape = cell_shape(image, polygon)
    outline = own_outline(image, polygon)
    box = [0.0, 0.0, 0.0, 0.0]
    if len(points) and np.isfinite(points).all():
        (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
        box = [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]
    return {
        **_common(polygon, number, outline),
        "boundingBox": [_round(v) for v in box],
        "centroid": _centroid(points, outline),
        "netArea": _round(0.0 if shape is None else shape.area),
    }


def _internal(image: ImageData, polygon: PolygonData, number: int, parent: int | None) -> dict[str, Any]:
    return {**_common(polygon, number, own_outline(image, polygon)), "parentId": polygon.parent_id, "parent": parent}


def _common(polygon: PolygonData, number: int, shape: BaseGeometry | None) -> dict[str, Any]:
    points = polygon.points
    closed = np.vstack([points, points[:1]]) if len(points) else points
    perimeter = float(np.hypot(*np.diff(closed, axis=0).T).sum()) if len(points) > 1 else 0.0
    return {
        "id": number,
        "points": [{"x": x, "y": y} for x, y in points.tolist()],
        "area": _round(0.0 if shape is None else shape.area),
        "perimeter": _round(perimeter),
        "polygonId": polygon.id,
        "className": polygon.class_name,
    }


def _centroid(points: np.ndarray, shape: BaseGeometry | None) -> dict[str, float | None] | None:
    """The centroid of the enclosed area; the mean of the points for an outline without area (as
    the replaced platform did)."""
    if not len(points) or not np.isfinite(points).all():
        return None
    x, y = (shape.centroid.x, shape.centroid.y) if shape is not None else points.mean(axis=0)
    return {"x": _round(x), "y": _round(y)}


def _round(value: float) -> float | None:
    """Rounded to `DECIMALS`; None for what is not a finite number (JSON has no NaN)."""
    value = float(value)
    return round(value, DECIMALS) if np.isfinite(value) else None
