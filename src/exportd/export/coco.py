"""COCO instance segmentation: `annotations/coco/annotations.json`.

One annotation per external polygon. COCO polygons cannot carry holes, so a
cell with holes is written as an uncompressed RLE mask (column-major, as
pycocotools reads it) of the cell minus its holes; a cell without holes stays a
polygon. Pixels are filled when their centre (x + 0.5, y + 0.5) lies inside,
the convention pycocotools uses for polygons.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from exportd.export.archive import ArchiveWriter, image_file_names
from exportd.export.geometry import cell_shape, outline
from exportd.export.source import ImageData, Point, PolygonData, ProjectSnapshot

if TYPE_CHECKING:
    from exportd.domain.options import ExportOptions
    from exportd.export.context import StepContext
    from exportd.export.formats import Group, ItemProgress


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
    ) -> None:
        names = image_file_names(project.images)
        categories = _categories(project.images)
        images: list[dict[str, Any]] = []
        annotations: list[dict[str, Any]] = []
        for image_id, image in enumerate(project.images, 1):
            ctx.raise_if_cancelled()
            images.append(
                {
                    "id": image_id,
                    "file_name": f"images/{names[image.id]}",
                    "width": image.width,
                    "height": image.height,
                }
            )
            for polygon in image.externals():
                annotation = _annotation(image, polygon, ctx)
                if annotation is not None:
                    annotation.update(
                        id=len(annotations) + 1,
                        image_id=image_id,
                        category_id=categories[polygon.class_name],
                    )
                    annotations.append(annotation)
            progress.done(f"COCO: {image.name}")
        archive.write_json(
            self.path,
            {
                "info": {
                    "description": f"{project.name}: cell segmentation",
                    "version": "1.0",
                    "year": archive.generated_at.year,
                    "contributor": "exportd",
                    "date_created": archive.generated_at.isoformat(),
                },
                "licenses": [],
                "images": images,
                "annotations": annotations,
                "categories": [
                    {"id": number, "name": name, "supercategory": "cell"}
                    for name, number in categories.items()
                ],
            },
        )


def rasterize(rings: Sequence[Sequence[Point]], height: int, width: int) -> np.ndarray:
    """A (height, width) uint8 mask of the even-odd interior of each ring, OR-ed together."""
    mask = np.zeros((height, width), dtype=bool)
    for ring in rings:
        mask |= _fill(np.asarray(ring, dtype=float), height, width)
    return mask.astype(np.uint8)


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """Uncompressed COCO RLE: run lengths over the column-major mask, starting with zeros."""
    flat = mask.ravel(order="F").astype(bool)
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate(([0], changes, [flat.size]))).tolist()
    if flat.size and flat[0]:
        counts.insert(0, 0)
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def _categories(images: Sequence[ImageData]) -> dict[str, int]:
    """Category ids from 1, by class name, in the order the names first appear."""
    categories: dict[str, int] = {}
    for image in images:
        for polygon in image.externals():
            categories.setdefault(polygon.class_name, len(categories) + 1)
    return categories


def _annotation(image: ImageData, polygon: PolygonData, ctx: StepContext) -> dict[str, Any] | None:
    shape = cell_shape(image, polygon)
    if shape is None or shape.is_empty or shape.area <= 0:
        ctx.warn(
            f"{image.name}: polygon {polygon.id} has fewer than 3 points or no area;"
            " left out of the COCO annotations"
        )
        return None
    holes = []
    for hole in image.holes_of(polygon.id):
        if outline(hole.points) is None:
            ctx.warn(f"{image.name}: hole {hole.id} has fewer than 3 points or no area; ignored")
        else:
            holes.append(hole.points)
    if holes:
        cell = rasterize([polygon.points], image.height, image.width)
        cut = rasterize(holes, image.height, image.width)
        segmentation: Any = encode_rle(cell & (1 - cut))
    else:
        segmentation = [[round(v, 2) for point in polygon.points for v in point]]
    xs = [x for x, _ in polygon.points]
    ys = [y for _, y in polygon.points]
    return {
        "segmentation": segmentation,
        "area": round(float(shape.area), 2),
        "bbox": [round(v, 2) for v in (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))],
        "iscrowd": 0,
    }


def _fill(ring: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scanline fill at pixel centres with the even-odd rule, one row per scanline."""
    mask = np.zeros((height, width), dtype=bool)
    x0, y0 = ring[:, 0], ring[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    top = max(int(np.floor(y0.min())), 0)
    bottom = min(int(np.ceil(y0.max())), height)
    if top >= bottom:
        return mask
    centres = np.arange(top, bottom, dtype=float)[:, None] + 0.5
    crosses = (y0 <= centres) != (y1 <= centres)  # (rows, edges)
    with np.errstate(divide="ignore", invalid="ignore"):
        at = x0 + (centres - y0) * (x1 - x0) / (y1 - y0)
    at = np.sort(np.where(crosses, at, np.inf), axis=1)  # a row crosses an even number of edges
    if at.shape[1] % 2:
        at = np.pad(at, ((0, 0), (0, 1)), constant_values=np.inf)
    # pixel x lies in the span [a, b) when a <= x + 0.5 < b; unused (inf, inf) spans cancel out
    starts = np.clip(np.ceil(at[:, 0::2] - 0.5), 0, width).astype(int)
    stops = np.clip(np.ceil(at[:, 1::2] - 0.5), 0, width).astype(int)
    rows = np.broadcast_to(np.arange(bottom - top)[:, None], starts.shape)
    edges = np.zeros((bottom - top, width + 1), dtype=np.int32)
    np.add.at(edges, (rows, starts), 1)
    np.add.at(edges, (rows, stops), -1)
    mask[top:bottom] = np.cumsum(edges, axis=1)[:, :width] > 0
    return mask
