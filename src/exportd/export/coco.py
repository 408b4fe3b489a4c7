"""COCO instance segmentation: `annotations/coco/annotations.json`.

One annotation per external polygon. COCO polygons cannot carry holes, so a
cell with holes is written as an uncompressed RLE mask (column-major, as
pycocotools reads it) of the cell minus its holes, rasterised within the
cell's bounding box only, a band of rows at a time, and kept as bits
(`exportd.export.raster`), so its memory is an eighth of the cell's box, not
the image; a cell without holes stays a polygon. Pixels are filled when their centre (x + 0.5, y + 0.5) lies inside,
the convention pycocotools uses for polygons. `iscrowd` stays 0 for a cell with
holes (the replaced platform set it to 1, which COCO evaluation would ignore).

As the replaced platform wrote it, and as CVAT reads it: an image's `file_name`
is its own name (the image root a loader is given is the ZIP's `images/`),
categories have `supercategory` "biological" and a display `color` (one class,
by default "cell", is the platform's single category), and each annotation has
`attributes {type, has_holes}`.

The file is streamed: the images first, then the annotations image by image,
so a large project never holds every annotation in memory.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from exportd.export.archive import ArchiveWriter, image_file_names
from exportd.export.geometry import Cell, cells_of
from exportd.export.raster import cell_rle_counts, window_of
from exportd.export.source import ImageData, ProjectSnapshot
from exportd.export.workers import Workers

if TYPE_CHECKING:
    from exportd.domain.options import ExportOptions
    from exportd.export.context import StepContext
    from exportd.export.formats import Group, ItemProgress


SUPERCATEGORY = "biological"
#: display colours of categories 1, 2, …: the replaced platform's green first, then repeating
COLORS = ((0, 255, 0), (255, 0, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255), (0, 255, 255), (255, 128, 0),
          (128, 0, 255))


def category_color(number: int) -> list[int]:
    return list(COLORS[(number - 1) % len(COLORS)])


class CocoWriter:
    name: ClassVar[str] = "coco"
    group: ClassVar[Group] = "annotations"
    title: ClassVar[str] = "COCO instance segmentation (JSON)"
    path: ClassVar[str] = "annotations/coco/annotations.json"

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
        categories = _categories(project.images)
        head = {
            "info": {
                "description": f"{project.name}: cell segmentation",
                "version": "1.0",
                "year": archive.generated_at.year,
                "contributor": "exportd",
                "date_created": archive.generated_at.isoformat(),
            },
            "licenses": [],
            "categories": [
                {"id": number, "name": name, "supercategory": SUPERCATEGORY, "color": category_color(number)}
                for name, number in categories.items()
            ],
            "images": [
                {"id": n, "file_name": names[i.id], "width": i.width, "height": i.height,
                 "date_captured": archive.generated_at.isoformat()}
                for n, i in enumerate(project.images, 1)
            ],
        }
        with archive.open_text(self.path) as out:
            out.write(json.dumps(head, ensure_ascii=False, indent=2)[:-2] + ',\n  "annotations": [')
            count = 0
            numbered = enumerate(project.images, 1)
            for (image_id, image), (annotations, warnings) in workers.map(image_annotations, numbered, categories):
                for message in warnings:
                    ctx.warn(message)
                for rest in annotations:
                    count += 1
                    out.write(f'{"," if count > 1 else ""}\n    {{"id": {count}, "image_id": {image_id}, {rest}')
                progress.done(f"COCO: {image.name}", image.name)
            out.write("\n  ]\n}\n")


def image_annotations(numbered: tuple[int, ImageData], categories: dict[str, int]) -> tuple[list[str], list[str]]:
    """One image's annotations as JSON objects without their first brace and ids, and its
    warnings (runs in a worker process; the writer numbers the annotations)."""
    _, image = numbered
    cells, warnings = cells_of(image)
    return [json.dumps(_annotation(image, cell, categories))[1:] for cell in cells], warnings


def _categories(images: Sequence[ImageData]) -> dict[str, int]:
    """Category ids from 1, by class name, in the order the names first appear."""
    categories: dict[str, int] = {}
    for image in images:
        for polygon in image.externals():
            categories.setdefault(polygon.class_name, len(categories) + 1)
    return categories


def _annotation(image: ImageData, cell: Cell, categories: dict[str, int]) -> dict[str, Any]:
    points = cell.polygon.points
    if cell.holes:
        segmentation: Any = _rle(cell, image.height, image.width)
    else:
        segmentation = [np.round(points, 2).ravel().tolist()]
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    return {
        "category_id": categories[cell.polygon.class_name],
        "segmentation": segmentation,
        "area": round(float(cell.shape.area), 2),
        "bbox": [round(float(v), 2) for v in (x0, y0, x1 - x0, y1 - y0)],
        "iscrowd": 0,
        "attributes": {"type": "external", "has_holes": bool(cell.holes)},
    }


def _rle(cell: Cell, height: int, width: int) -> dict[str, Any]:
    """The cell minus its holes as an uncompressed RLE of the whole image, rasterised within its box
    a strip of columns at a time."""
    window = window_of(cell.polygon.points, height, width)
    if window is None:
        return {"size": [height, width], "counts": [height * width]}
    return {"size": [height, width], "counts": cell_rle_counts(cell, window, height, width)}
