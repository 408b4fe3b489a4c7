"""The project's own JSON: `annotations/json/segmentation_data.json`.

Every polygon as stored, holes included and linked to their cell by
`parentId`, so the project can be rebuilt from the export. `area` is in px²:
an external polygon's with its holes subtracted, a hole's own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from exportd.export.archive import ArchiveWriter, image_file_names
from exportd.export.geometry import polygon_area
from exportd.export.source import ImageData, ProjectSnapshot

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
    ) -> None:
        names = image_file_names(project.images)
        images: list[dict[str, Any]] = []
        for image in project.images:
            ctx.raise_if_cancelled()
            images.append(_image(image, names[image.id]))
            progress.done(f"JSON: {image.name}")
        archive.write_json(
            self.path,
            {
                "formatVersion": FORMAT_VERSION,
                "project": {"id": project.id, "name": project.name},
                "exportedAt": archive.generated_at.isoformat(),
                "pixelToMicrometerScale": options.pixel_to_micrometer_scale,
                "images": images,
            },
        )


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
                "points": [[x, y] for x, y in polygon.points],
                "parentId": polygon.parent_id,
                "className": polygon.class_name,
                "area": round(polygon_area(image, polygon), 2),
            }
            for polygon in image.polygons
        ],
    }
