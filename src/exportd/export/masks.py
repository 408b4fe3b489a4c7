"""Instance label masks: `masks/<image stem>.tif`, the input Cellpose and StarDist train on.

One single-channel TIFF per image (zlib-compressed, readable by tifffile,
scikit-image and Fiji), the size of the image: 0 is the background, and each
cell's pixels hold its number (1, 2, … as on the visualizations and in the
metrics' `Polygon` column). 16-bit, or 32-bit when an image has more than
65,535 cells. Holes are background. A pixel belongs to a cell when its centre
lies inside it, the rule of the COCO masks; where cells overlap, the later
cell's number wins, and the image gets a warning. An image without cells gets
an all-background mask. Each cell is drawn within its bounding box only
(`exportd.export.raster`): the label array is the one image-sized allocation.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import tifffile

from exportd.export.archive import ArchiveWriter, file_stem, image_file_names
from exportd.export.geometry import Cell, cells_of
from exportd.export.raster import cell_mask, window_of
from exportd.export.source import ImageData, ProjectSnapshot
from exportd.export.workers import Workers

if TYPE_CHECKING:
    from exportd.domain.options import ExportOptions
    from exportd.export.context import StepContext
    from exportd.export.formats import Group, ItemProgress

FOLDER = "masks/"
MAX_16_BIT = 65_535


class MasksWriter:
    name: ClassVar[str] = "masks"
    group: ClassVar[Group] = "annotations"
    title: ClassVar[str] = "Instance label masks (one 16/32-bit TIFF per image, for Cellpose and StarDist)"
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
        for image, (data, warnings) in workers.map(image_mask, project.images):
            for message in warnings:
                ctx.warn(message)
            archive.write_bytes(f"{FOLDER}{file_stem(names[image.id])}.tif", data, compress=False)
            progress.done(f"Masks: {image.name}", image.name)


def image_mask(image: ImageData) -> tuple[bytes, list[str]]:
    """One image's mask as a TIFF file, and its warnings (runs in a worker process)."""
    labels, warnings = label_image(image)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, labels, compression="zlib", metadata=None)
    return buffer.getvalue(), warnings


def label_image(image: ImageData) -> tuple[np.ndarray, list[str]]:
    """The (height, width) label array of an image's cells, and the warnings of `cells_of` and overlaps."""
    cells, warnings = cells_of(image)
    labels = np.zeros((image.height, image.width), dtype=np.uint16 if len(cells) <= MAX_16_BIT else np.uint32)
    overlapping = [cell.number for cell in cells if _paint(labels, cell)]
    if overlapping:
        shown = ", ".join(map(str, overlapping[:5])) + (f" and {len(overlapping) - 5} more" if len(overlapping) > 5 else "")
        warnings.append(f"{image.name}: cells {shown} overlap earlier cells; in the mask the later cell's pixels win")
    return labels, warnings


def _paint(labels: np.ndarray, cell: Cell) -> bool:
    """Write the cell's number on its pixels (centres inside it, not in a hole), within its bounding
    box only; True if it covered another cell."""
    window = window_of(cell.polygon.points, *labels.shape)
    if window is None:
        return False
    inside = cell_mask(cell, window)
    box = labels[window.slices]
    covered = bool(np.any(box, where=inside))
    np.copyto(box, cell.number, where=inside)
    return covered
