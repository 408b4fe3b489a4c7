"""Cells as pixels, within their bounding box: the COCO masks and the instance label masks.

A pixel is inside a ring when its centre (x + 0.5, y + 0.5) is, by the
even-odd rule. Filling works on a `Window` (a cell's bounding box clipped to
the image) in full-image coordinates, so a window's pixels are exactly those
of the same rows and columns of the whole image filled at once, and row bands
of at most `BAND_CELLS` cells at a time: a polygon with many points costs no
more than a band. A cell's COCO RLE (`cell_rle_counts`) keeps its mask as
bits, one eighth of its box, and reads it a strip of columns at a time; the
label masks paint a band of rows at a time (`exportd.export.masks`), so
neither grows with the image.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from exportd.export.geometry import Cell
    from exportd.export.source import Point

#: a band's scanline work (rows × edges and rows × columns) is at most this many cells
BAND_CELLS = 1 << 18


@dataclass(frozen=True, slots=True)
class Window:
    """The pixels top <= y < bottom, left <= x < right of an image."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.bottom - self.top, self.right - self.left

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.bottom), slice(self.left, self.right)


def window_of(points: np.ndarray, height: int, width: int) -> Window | None:
    """The pixels whose centres the points' bounding box can hold, within the image; None when none."""
    left, top = max(int(np.floor(points[:, 0].min())), 0), max(int(np.floor(points[:, 1].min())), 0)
    right, bottom = min(int(np.ceil(points[:, 0].max())), width), min(int(np.ceil(points[:, 1].max())), height)
    return Window(top, left, bottom, right) if left < right and top < bottom else None


def cell_mask(cell: Cell, window: Window) -> np.ndarray:
    """The window's pixels inside the cell's outline and in none of its holes."""
    inside = fill(cell.polygon.points, window)
    for hole in cell.holes:
        for row, band in _bands(hole.points, window):
            inside[row:row + len(band)] &= ~band
    return inside


def rasterize(rings: Sequence[Sequence[Point]], height: int, width: int) -> np.ndarray:
    """A (height, width) uint8 mask of the even-odd interior of each ring, OR-ed together."""
    whole = Window(0, 0, height, width)
    mask = np.zeros((height, width), dtype=bool)
    for ring in rings:
        mask |= fill(np.asarray(ring, dtype=float), whole)
    return mask.astype(np.uint8)


def fill(ring: np.ndarray, window: Window) -> np.ndarray:
    """A boolean mask of the window: the pixels whose centre lies inside the ring (even-odd)."""
    mask = np.zeros(window.shape, dtype=bool)
    for row, band in _bands(ring, window):
        mask[row:row + len(band)] = band
    return mask


def _bands(ring: np.ndarray, window: Window) -> Iterator[tuple[int, np.ndarray]]:
    """The ring's rows within the window, a band at a time: (first row relative to the window, mask)."""
    ys = ring[:, 1]
    top = max(int(np.floor(ys.min())), window.top)
    bottom = min(int(np.ceil(ys.max())), window.bottom)
    rows = max(1, BAND_CELLS // max(len(ring), window.right - window.left + 1))
    for start in range(top, bottom, rows):
        stop = min(start + rows, bottom)
        yield start - window.top, _scanlines(ring, start, stop, window.left, window.right)


def _scanlines(ring: np.ndarray, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    """Rows top..bottom, columns left..right: scanlines at pixel centres, in image coordinates."""
    x0, y0 = ring[:, 0], ring[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    centres = np.arange(top, bottom, dtype=float)[:, None] + 0.5
    crosses = (y0 <= centres) != (y1 <= centres)  # (rows, edges)
    with np.errstate(divide="ignore", invalid="ignore"):
        at = x0 + (centres - y0) * (x1 - x0) / (y1 - y0)
    at = np.sort(np.where(crosses, at, np.inf), axis=1)  # a row crosses an even number of edges
    if at.shape[1] % 2:
        at = np.pad(at, ((0, 0), (0, 1)), constant_values=np.inf)
    # pixel x lies in the span [a, b) when a <= x + 0.5 < b; unused (inf, inf) spans cancel out
    starts = np.clip(np.ceil(at[:, 0::2] - 0.5), left, right).astype(np.int64) - left
    stops = np.clip(np.ceil(at[:, 1::2] - 0.5), left, right).astype(np.int64) - left
    rows = np.broadcast_to(np.arange(bottom - top)[:, None], starts.shape)
    edges = np.zeros((bottom - top, right - left + 1), dtype=np.int32)
    np.add.at(edges, (rows, starts), 1)
    np.add.at(edges, (rows, stops), -1)
    return np.cumsum(edges, axis=1, dtype=np.int32)[:, :right - left] > 0


def rle_counts(mask: np.ndarray, window: Window, height: int, width: int) -> list[int]:
    """Uncompressed COCO RLE counts of a (height, width) image that is `mask` in `window` and 0
    elsewhere: run lengths over the column-major image, starting with zeros, built from the
    window alone (a column of it at a time per band)."""
    rows = mask.shape[0]
    step = max(1, BAND_CELLS // (rows + 2))
    return _counts([_column_edges(mask[:, first:first + step], window.top, window.left + first, height)
                    for first in range(0, mask.shape[1], step)], height, width)


def cell_rle_counts(cell: Cell, window: Window, height: int, width: int) -> list[int]:
    """`rle_counts(cell_mask(cell, window), window, height, width)`, holding the cell's mask as bits:
    it is filled a band of rows at a time and packed, then read a strip of columns at a time."""
    rows, columns = window.shape
    packed = np.zeros((rows, (columns + 7) // 8), dtype=np.uint8)
    band = max(1, BAND_CELLS // columns)
    for top in range(window.top, window.bottom, band):
        part = Window(top, window.left, min(top + band, window.bottom), window.right)
        packed[top - window.top:part.bottom - window.top] = np.packbits(cell_mask(cell, part), axis=1)
    step = max(8, BAND_CELLS // (rows + 2) // 8 * 8)
    edges = []
    for first in range(0, columns, step):
        part = np.unpackbits(packed[:, first // 8:(first + step) // 8 + 1], axis=1)[:, :min(step, columns - first)]
        edges.append(_column_edges(part, window.top, window.left + first, height))
    return _counts(edges, height, width)


def _column_edges(part: np.ndarray, top: int, left: int, height: int) -> np.ndarray:
    """Where runs of `part` (rows from image row `top`, columns from image column `left`) start and
    end in the column-major image: per column, in order, a run's first pixel, then the one after its last."""
    rows = part.shape[0]
    framed = np.zeros((rows + 2, part.shape[1]), dtype=np.int8)
    framed[1:-1] = part
    columns, at = np.nonzero(np.diff(framed, axis=0).T)
    return (left + columns).astype(np.int64) * height + top + at


def _counts(bounds: list[np.ndarray], height: int, width: int) -> list[int]:
    """RLE counts of the (height, width) image from its runs' starts and ends, in column-major order."""
    edges = np.concatenate(bounds) if bounds else np.zeros(0, dtype=np.int64)
    # a run that ends at the foot of a column and one that starts at the head of the next are one run
    joined = np.flatnonzero(edges[1:-1:2] == edges[2::2])
    if joined.size:
        edges = np.delete(edges, np.concatenate((2 * joined + 1, 2 * joined + 2)))
    counts = np.diff(np.concatenate(([0], edges, [height * width]))).tolist()
    if len(counts) > 1 and counts[-1] == 0:
        counts.pop()
    return counts
