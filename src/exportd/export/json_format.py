"""The project's own JSON: `annotations/json/segmentation_data.json`.

Every polygon as stored, holes included and linked to their cell by
`parentId`, so the project can be rebuilt from the export. `area` is in px²:
an external polygon's with its holes subtracted, a hole's own. The file is
streamed image by image.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar

from exportd.export.archive import ArchiveWriter, image_file_names
from exportd.export.geometry import polygon_area
from exportd.export.source import ImageData, ProjectSnapshot
from exportd.export.workers import Workers

if TYPE_CHECKING:
    from exportd.domain.options import ExportOptions
    from exportd.export.context import StepContext
    from exportd.export.formats import Group, ItemProgress

FORMAT_VERSION = 1


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
        head = {
            "formatVersion": FORMAT_VERSION,
            "project": {"id": project.id, "name": project.name},
            "exportedAt": archive.generated_at.isoformat(),
            "pixelToMicrometerScale": options.pixel_to_micrometer_scale,
        }
        with archive.open_text(self.path) as out:
            out.write(json.dumps(head, ensure_ascii=False, indent=2)[:-2] + ',\n  "images": [')
            named = ((image, names[image.id]) for image in project.images)
            for number, ((image, _), text) in enumerate(workers.map(image_json, named), 1):
                out.write(("\n    " if number == 1 else ",\n    ") + text)
                progress.done(f"JSON: {image.name}", image.name)
            out.write("\n  ]\n}\n" if project.images else "]\n}\n")


def image_json(named: tuple[ImageData, str]) -> str:
    """One image and its polygons as one line of JSON (runs in a worker process)."""
    image, file_name = named
    return json.dumps(_image(image, file_name), ensure_ascii=False)


def _image(image: ImageData, file_name: str) -> dict[str, Any]:
    return {
        "id": image.id,
        "name": image.name,
        "fileName": f"images/{file_name}",
        "width": image.width,
        "height": image.height,
        "polygons": [
            {
                "id": polygon.id,
                "type": polygon.kind,
                "points": polygon.points.tolist(),
                "parentId": polygon.parent_id,
                "className": polygon.class_name,
                "area": round(polygon_area(image, polygon), 2),
            }
            for polygon in image.polygons
        ],
    }
