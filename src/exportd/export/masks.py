"""Instance label masks: `masks/<image stem>.tif`, the input Cellpose and StarDist train on.

One single-channel TIFF per image (zlib-compressed, readable by tifffile,
scikit-image and Fiji), the size of the image: 0 is the background, and each
cell's pixels hold its number (1, 2, … as on the visualizations and in the
metrics' `Polygon` column). 16-bit, or 32-bit when an image has more than
65,535 cells. Holes are background. A pixel belongs to a cell when its centre
lies inside it, the rule of the COCO masks; where cells overlap, the later
cell's number wins, and the image gets a warning. An image without cells gets
an all-background mask. Each cell is drawn within its bounding box only
(`exportd.export.raster`), and the labels a band of rows at a time, each band
compressed into the TIFF's strips as soon as it is painted: an image at the
pixel cap costs a band and its compressed file, not a 200 MB label array.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import tifffile

from exportd.export.archive import ArchiveWriter, file_stem, image_file_names
from exportd.export.geometry import Cell, cells_of
from exportd.export.raster import Window, cell_mask, window_of
from exportd.export.source import ImageData, ProjectSnapshot
from exportd.export.workers import Workers

if TYPE_CHECKING:
    from exportd.domain.options import ExportOptions
    from exportd.export.context import StepContext
    from exportd.export.formats import Group, ItemProgress

FOLDER = "masks/"
MAX_16_BIT = 65_535
STRIP_BYTES = 1 << 18  #: a TIFF strip's uncompressed size, at most (tifffile's default)
BAND_PIXELS = 1 << 20  #: labels painted at a time
ZLIB_LEVEL = 6  #: tifffile's default for "zlib"


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
    """One image's mask as a TIFF file, and its warnings (runs in a worker process).

    The labels are painted a band of rows at a time and each TIFF strip is
    compressed as soon as its band is done, so the whole label array never
    exists: memory follows `BAND_PIXELS` and the compressed file. The file is
    byte for byte the one `tifffile.imwrite(labels, compression="zlib")` writes.
    """
    labels = _Labels(image)
    strip = labels.strip_rows
    strips = (zlib.compress(band[top:top + strip].tobytes(), ZLIB_LEVEL)
              for band in labels.bands() for top in range(0, len(band), strip))
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, strips, shape=(image.height, image.width), dtype=labels.dtype,
                     compression="zlib", rowsperstrip=strip, metadata=None)
    return buffer.getvalue(), labels.warnings


def label_image(image: ImageData) -> tuple[np.ndarray, list[str]]:
    """The (height, width) label array of an image's cells, and the warnings of `cells_of` and overlaps."""
    labels = _Labels(image)
    array = np.concatenate(list(labels.bands())) if image.height else np.zeros((0, image.width), labels.dtype)
    return array, labels.warnings


class _Labels:
    """An image's label array, painted band by band (`bands()`, once); `warnings` is complete once
    the last band is painted."""

    def __init__(self, image: ImageData) -> None:
        self.image = image
        self.cells, self._warnings = cells_of(image)
        self._overlapping: set[int] = set()  #: indices of the cells that covered an earlier one
        self.dtype = np.dtype(np.uint16 if len(self.cells) <= MAX_16_BIT else np.uint32)
        row_bytes = max(1, image.width * self.dtype.itemsize)
        self.strip_rows = max(1, STRIP_BYTES // row_bytes)  #: tifffile's default for a compressed image
        #: rows painted at a time: whole strips, about `BAND_PIXELS` pixels
        self.band_rows = self.strip_rows * max(1, BAND_PIXELS // max(1, self.strip_rows * image.width))

    def bands(self) -> Iterator[np.ndarray]:
        """The label array's rows, top to bottom, `band_rows` at a time."""
        height, width = self.image.height, self.image.width
        windows = [(cell, window_of(cell.polygon.points, height, width)) for cell in self.cells]
        waiting = sorted((w.top, n) for n, (_, w) in enumerate(windows) if w is not None)
        active: list[int] = []  # cells whose box reaches the current band, in cell order
        next_waiting = 0
        for top in range(0, height, self.band_rows):
            bottom = min(top + self.band_rows, height)
            while next_waiting < len(waiting) and waiting[next_waiting][0] < bottom:
                active.append(waiting[next_waiting][1])
                next_waiting += 1
            active = sorted(n for n in active if windows[n][1].bottom > top)
            band = np.zeros((bottom - top, width), dtype=self.dtype)
            for n in active:
                cell, box = windows[n]
                if _paint(band, top, cell, Window(max(box.top, top), box.left, min(box.bottom, bottom), box.right)):
                    self._overlapping.add(n)
            yield band

    @property
    def warnings(self) -> list[str]:
        """Those of `cells_of`, and which cells overlap earlier ones."""
        if not self._overlapping:
            return list(self._warnings)
        numbers = [self.cells[n].number for n in sorted(self._overlapping)]
        shown = ", ".join(map(str, numbers[:5])) + (f" and {len(numbers) - 5} more" if len(numbers) > 5 else "")
        return [*self._warnings, f"{self.image.name}: cells {shown} overlap earlier cells; "
                                 "in the mask the later cell's pixels win"]


def _paint(band: np.ndarray, top: int, cell: Cell, window: Window) -> bool:
    """Write the cell's number on its pixels (centres inside it, not in a hole) within `window`, the
    part of its bounding box in the band whose first row is image row `top`; True if it covered
    another cell."""
    inside = cell_mask(cell, window)
    box = band[window.top - top:window.bottom - top, window.left:window.right]
    covered = bool(np.any(box, where=inside))
    np.copyto(box, cell.number, where=inside)
    return covered
