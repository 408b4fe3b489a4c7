"""Visualizations: `visualizations/<stem>_viz.png`, each image with its cells drawn on it.

Cells are filled and outlined in the external colour, holes in the internal
colour, with the configured stroke width. `transparency` is the opacity of the
fills, as in the system exportd replaces: 0 draws outlines only, 1 paints the
polygons solid. With `showNumbers`, each cell's number (the `Polygon` column of
the metrics) sits on a white disc inside the cell, `fontSize` pixels high.
The PNG has the size of the original image, up to `MAX_OVERLAY_PIXELS`
(4096 × 4096): a larger one is drawn scaled down, with a warning. It is RGB.
An overlay over `BAND_PIXELS` is made a band of rows at a time, from an
original read a strip at a time where `_source_bands` can (PNG of 8 bits or
less and 16-bit greyscale PNG, striped or tiled TIFF, uncompressed BMP): drawing
one then costs the overlay's one-byte layer (16 MB at most) and a band. An
original it cannot stream (interlaced or 16-bit colour PNG, JPEG, LZW or JPEG
TIFF without imagecodecs, run-length BMP) costs its decoded pixels on top, at
most `MAX_IMAGE_BYTES`, once: a JPEG is decoded at the smallest DCT scale still
at least the overlay's size, and any of them is reduced in bands by the same
box filter (`_box_reduced`), without a full-size copy.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from exportd.domain.limits import MAX_IMAGE_BYTES, decoded_bytes
from exportd.export.archive import ArchiveWriter, file_stem, image_file_names
from exportd.export.geometry import Cell, cells_of
from exportd.export.pngstream import PngRows, PngWriter
from exportd.export.tiffstream import TiffRows
from exportd.export.source import ImageData, ProjectSnapshot
from exportd.export.workers import Workers

if TYPE_CHECKING:
    from exportd.domain.options import VisualizationOptions
    from exportd.export.context import StepContext
    from exportd.export.formats import ItemProgress

log = logging.getLogger(__name__)

FOLDER = "visualizations/"
PNG_COMPRESSION = 3  #: zlib level: most of level 6's size at a fraction of its time
MAX_OVERLAY_PIXELS = 4096 * 4096  #: larger originals are drawn scaled down to this many pixels
#: the most a JPEG is decoded to for its overlay: what a 4096² RGB original drawn at its own size holds
MAX_DECODED_BYTES = 4 * MAX_OVERLAY_PIXELS
DCT_SCALES = (1, 2, 4, 8)  #: 1 / the scales libjpeg decodes at
BAND_PIXELS = 1 << 18  #: a larger overlay is made this many pixels at a time (`_banded`)
NEAREST_MODES = ("1", "P")  #: modes Pillow resizes by nearest neighbour, whatever the filter asked
ALPHA_MODES = ("LA", "RGBA")  #: averaged premultiplied by alpha, as Pillow's resize does
DEEP_MODES = ("I;16", "I;16B", "I;16L", "I", "F")  #: drawn scaled to their maximum (`_as_rgb`)
#: modes `_box_reduced` reduces, from a streamed PNG or the decoded original; others (rare: RGBX,
#: YCbCr, LAB, HSV, signed 16-bit) are reduced by Pillow, decoded whole
BOX_MODES = ("L", "RGB", "CMYK", *ALPHA_MODES, *DEEP_MODES)
#: inks of the overlay layer, one byte a pixel: a fill, the same + LINE for its outline, the number's parts
EXTERNAL, INTERNAL, LINE, DISC, DISC_EDGE, TEXT = 1, 2, 2, 5, 6, 7

RGB = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Style:
    """The visualization options as plain data, for worker processes."""

    external: RGB
    internal: RGB
    stroke_width: int
    fill_alpha: int  #: 0-255
    font_size: int
    show_numbers: bool

    @classmethod
    def of(cls, options: VisualizationOptions) -> Style:
        return cls(
            external=_rgb(options.polygon_colors.external),
            internal=_rgb(options.polygon_colors.internal),
            stroke_width=options.stroke_width,
            fill_alpha=round(255 * options.transparency),
            font_size=options.font_size,
            show_numbers=options.show_numbers,
        )


def write_visualizations(
    project: ProjectSnapshot,
    options: VisualizationOptions,
    archive: ArchiveWriter,
    ctx: StepContext,
    progress: ItemProgress,
    workers: Workers,
) -> None:
    """One PNG per image that has cells to draw; the others are left out with a warning."""
    names = image_file_names(project.images)
    for image, (png, warnings) in workers.map(render, project.images, Style.of(options)):
        for message in warnings:
            ctx.warn(message)
        if png is not None:
            archive.write_bytes(f"{FOLDER}{file_stem(names[image.id])}_viz.png", png, compress=False)
        progress.done(f"Visualization: {image.name}", image.name)


def render(image: ImageData, style: Style) -> tuple[bytes | None, list[str]]:
    """The PNG of one image with its cells drawn, or None, and its warnings (runs in a worker process).

    An overlay of `BAND_PIXELS` at most is drawn at once. A larger one is made
    a band of rows at a time (`_banded`): memory stays bounded by the overlay's
    one-byte layer and a band, plus, for an original that is not streamed, its
    decoded pixels.
    """
    cells, warnings = cells_of(image)
    if not cells:
        return None, warnings
    base = None
    try:
        with Image.open(image.path) as source:
            if decoded_bytes(source.mode, source.size) > MAX_IMAGE_BYTES:
                return None, [*warnings, f"{image.name}: {source.width}x{source.height} {source.mode} is too large "
                                         "to draw; no visualization"]
            full, mode = source.size, source.mode
            size = overlay_size(full)
            if source.format == "JPEG":
                size = _jpeg_size(full, mode, size)
            if size[0] * size[1] <= BAND_PIXELS:
                base = _whole(source, size)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        return None, [*warnings, _unreadable(image, error)]
    scale = (size[0] / full[0], size[1] / full[1])
    if base is not None:
        _blend(base, _overlay(size, cells, style, scale), style)
        buffer = io.BytesIO()
        base.save(buffer, "PNG", compress_level=PNG_COMPRESSION)
        png = buffer.getvalue()
    else:
        try:
            png = _banded(image.path, size, lambda: _overlay(size, cells, style, scale), style)
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            return None, [*warnings, _unreadable(image, error)]
    if size != full:
        warnings = [*warnings, f"{image.name}: visualization drawn at {size[0]}x{size[1]} "
                               f"(the original is {full[0]}x{full[1]})"]
    return png, warnings


def _unreadable(image: ImageData, error: Exception) -> str:
    """The warning for an original that cannot be drawn on."""
    if isinstance(error, FileNotFoundError):
        return f"{image.name}: the original file is missing from storage; no visualization"
    log.warning("visualization of image %s skipped: %s cannot be read: %s", image.id, image.path, error)
    return f"{image.name}: the original file cannot be read (damaged, or not an image); no visualization"


def _whole(source: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The original at `size` as RGB, decoded at once (for an overlay of `BAND_PIXELS` at most)."""
    reduced, peak = _reduced(source, size)
    return _as_rgb(reduced, peak)


def _banded(path: Path, size: tuple[int, int], draw: Callable[[], Image.Image], style: Style) -> bytes:
    """The overlay's PNG, made a band of rows at a time: each band of the original at `size` becomes
    RGB, gets its part of the layer (`draw()`) blended on, and is compressed before the next is read.
    The layer is drawn once the first band is read: an original decoded whole is released by then."""
    writer = PngWriter(size, PNG_COMPRESSION)
    layer = None
    top = 0
    for band, peak in _source_bands(path, size):
        if layer is None:
            layer = draw()
        rgb = _as_rgb(band, peak)
        del band
        _blend(rgb, layer.crop((0, top, size[0], top + rgb.height)), style)
        writer.write(rgb)
        top += rgb.height
    return writer.close()


def _source_bands(path: Path, size: tuple[int, int]) -> Iterator[tuple[Image.Image, float | None]]:
    """The original at `size` in its own mode, top to bottom a band at a time, and the maximum of a
    16-bit, 32-bit or float image (see `_as_rgb`).

    A PNG that `PngRows` reads, at its own size or in a mode Pillow reduces by
    nearest neighbour (1-bit, palette), is streamed: only the rows the overlay
    shows are kept, a strip at a time, so a 10,000 x 10,000 1-bit original costs
    a strip, not its 100 MB of decoded pixels. One in greyscale (8 or 16-bit),
    RGB, RGBA or greyscale with alpha that is reduced is streamed too and reduced
    by `_box_reduced` (within a level of Pillow's box filter; see there for
    alpha); a 16-bit one is read twice, for its maximum, then for its pixels.
    A TIFF that `TiffRows` reads (striped or tiled, in a compression tifffile
    decodes here) and an uncompressed original Pillow reads as rows in one piece
    (`_raw_tile`: BMP) are streamed the same way (`_array_bands`). Others are
    decoded whole: a JPEG at the smallest DCT scale still at least `size`
    (Pillow's `draft`), then reduced by `_box_reduced` in bands, so that they
    cost the decoded original and a band, with no full-size copy; 1-bit and
    palette ones, and the rare modes `_box_reduced` does not handle, are reduced
    by Pillow, as `_reduced` does.
    """
    rows = PngRows.open(path)
    if rows is not None:
        with rows:
            strip = max(1, BAND_PIXELS // rows.width)
            peak = _png_peak(rows, strip) if rows.mode in DEEP_MODES else None
            if (rows.width, rows.height) == size or rows.mode in NEAREST_MODES:
                yield from ((band, peak) for band in _streamed(rows, size))
            else:
                strips = ((top, rows.array(data, count)) for top, count, data in rows.strips(strip))
                yield from ((band, peak) for band in _box_reduced(strips, (rows.width, rows.height), size,
                                                                  rows.mode, strip))
            return
    with Image.open(path) as source:
        tiff = TiffRows.open(path, source.mode) if source.format == "TIFF" else None
        if tiff is not None:
            with tiff:
                yield from _array_bands(tiff.strips, (tiff.width, tiff.height), size, tiff.mode)
            return
        if source.mode in BOX_MODES and _raw_tile(source) is not None:
            yield from _array_bands(lambda rows: _raw_strips(source, path, rows), source.size, size, source.mode)
            return
        _draft(source, size)
        if source.size != size and source.mode in BOX_MODES:
            source.load()
            peak = _peak(source)
            strip = max(1, BAND_PIXELS // source.width)
            strips = ((top, _rows(source, top, strip)) for top in range(0, source.height, strip))
            yield from ((band, peak) for band in _box_reduced(strips, source.size, size, source.mode, strip))
            return
        reduced, peak = _reduced(source, size)
        if reduced is not source:
            source.close()  # releases the decoded pixels (leaving the `with` closes only the file)
        step = max(1, BAND_PIXELS // size[0])
        for top in range(0, size[1], step):
            yield reduced.crop((0, top, size[0], min(top + step, size[1]))), peak


def held_whole(data: bytes) -> int:
    """The bytes of decoded pixels that drawing the overlay of the original `data` holds at once: 0
    when `_source_bands` reads it a strip at a time, else its decoded pixels (a JPEG's at the DCT
    scale it is decoded at, within `MAX_DECODED_BYTES` by `_jpeg_size`). The API refuses an original
    for which this is more than `MAX_DECODED_BYTES` (imports/batch.py), so that no original it
    accepts costs an export more than a 4096² RGB image decoded whole."""
    try:
        if (rows := PngRows.open(io.BytesIO(data))) is not None:
            rows.close()
            return 0
    except OSError:
        pass  # not a PNG this reads: Pillow decides
    with Image.open(io.BytesIO(data)) as source:
        if source.format == "TIFF" and (tiff := TiffRows.open(io.BytesIO(data), source.mode)) is not None:
            tiff.close()
            return 0
        if source.mode in BOX_MODES and _raw_tile(source) is not None:
            return 0
        size = overlay_size(source.size)
        if source.format == "JPEG":
            drawn = _jpeg_size(source.size, source.mode, size)
            return decoded_bytes(source.mode, _scaled(source.size, _dct_scale(source.size, drawn)))
        return decoded_bytes(source.mode, source.size)


def _dct_scale(full: tuple[int, int], size: tuple[int, int]) -> int:
    """The largest DCT scale (1, 2, 4 or 8) at which a JPEG of `full` size still decodes to at least `size`."""
    return max(scale for scale in DCT_SCALES if all(-(-side // scale) >= want for side, want in zip(full, size)))


def _jpeg_size(full: tuple[int, int], mode: str, size: tuple[int, int]) -> tuple[int, int]:
    """The size a JPEG's overlay is drawn at: `size`, unless decoding it at the DCT scale for `size`
    would hold more than `MAX_DECODED_BYTES`; then the size of the smallest scale that holds less
    (the overlay drawn smaller, with the warning every reduced overlay has)."""
    scale = _dct_scale(full, size)
    while decoded_bytes(mode, _scaled(full, scale)) > MAX_DECODED_BYTES and scale < DCT_SCALES[-1]:
        scale *= 2
    return size if scale == _dct_scale(full, size) else _scaled(full, scale)


def _scaled(full: tuple[int, int], scale: int) -> tuple[int, int]:
    """The size libjpeg decodes an image of `full` size to at a DCT scale of 1 / `scale`."""
    return -(-full[0] // scale), -(-full[1] // scale)


def _draft(source: Image.Image, size: tuple[int, int]) -> None:
    """Have a JPEG decode at the DCT scale for `size` (`_dct_scale`), as Pillow's `draft` picks it."""
    if source.format == "JPEG":
        scale = _dct_scale(source.size, size)
        source.draft(source.mode, (source.width // scale, source.height // scale))


def _array_bands(strips: Callable[[int], Iterator[tuple[int, np.ndarray]]], full: tuple[int, int],
                 size: tuple[int, int], mode: str) -> Iterator[tuple[Image.Image, float | None]]:
    """An original given as array strips (`strips(rows)`, from the top each call) at `size` a band at a
    time, as `_source_bands` gives it; 16-bit and float ones read twice, for their maximum, then for
    their pixels."""
    strip = max(1, BAND_PIXELS // full[0])
    peak = None
    if mode in DEEP_MODES:
        high = max(float(pixels.max()) for _, pixels in strips(strip))
        peak = high if high > 0 else 1.0
    if full == size:
        yield from ((_band_image(pixels, mode), peak) for _, pixels in strips(strip))
    else:
        yield from ((band, peak) for band in _box_reduced(strips(strip), full, size, mode, strip))


def _raw_tile(source: Image.Image) -> tuple[str, int, int, int] | None:
    """(raw mode, offset, stride, orientation) of an original Pillow would read as uncompressed rows in
    one piece (an uncompressed BMP, say), else None."""
    if len(source.tile) != 1:
        return None
    codec, extents, offset, args = source.tile[0]
    if codec != "raw" or tuple(extents) != (0, 0, *source.size) or not isinstance(args, tuple) or len(args) != 3:
        return None
    rawmode, stride, orientation = args
    if not stride or orientation not in (1, -1):
        return None
    return rawmode, offset, stride, orientation


def _raw_strips(source: Image.Image, path: Path, rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, pixels) of an uncompressed original (`_raw_tile`), `rows` rows at a time from the
    top, each strip read from the file and unpacked by Pillow's raw decoder."""
    rawmode, offset, stride, orientation = _raw_tile(source)
    width, height = source.size
    with open(path, "rb") as file:
        for top in range(0, height, rows):
            count = min(rows, height - top)
            file.seek(offset + stride * (top if orientation == 1 else height - top - count))  # bottom-up: from below
            data = file.read(stride * count)
            if len(data) < stride * count:
                raise OSError("image file is truncated")
            strip = Image.frombytes(source.mode, (width, count), data, "raw", rawmode, stride, orientation)
            yield top, np.asarray(strip).reshape(count, width, -1)


def _png_peak(rows: PngRows, strip: int) -> float:
    """The maximum of a 16-bit PNG's pixels (one pass over its strips), as `_peak` takes it."""
    high = 0
    for _, count, data in rows.strips(strip):
        high = max(high, int(rows.array(data, count).max()))
    return float(high) if high > 0 else 1.0


def _rows(image: Image.Image, top: int, count: int) -> np.ndarray:
    """Rows [top, top + count) of a decoded image as an array (rows, width, channels)."""
    part = np.asarray(image.crop((0, top, image.width, min(top + count, image.height))))
    return part.reshape(part.shape[0], image.width, -1)


def _streamed(rows: PngRows, size: tuple[int, int]) -> Iterator[Image.Image]:
    """The PNG's rows at `size` (its own, or by nearest neighbour), strip by strip."""
    strip = max(1, BAND_PIXELS // rows.width)
    if (rows.width, rows.height) == size:
        for _, count, data in rows.strips(strip):
            yield rows.image(data, count)
        return
    wanted = nearest_rows(rows.height, size[1])
    done = 0
    for top, count, data in rows.strips(strip):
        end = int(np.searchsorted(wanted, top + count))
        if end > done:
            picked = rows.image(data, count, wanted[done:end] - top)
            yield picked.resize((size[0], end - done), Image.Resampling.NEAREST)  # the columns, as Pillow picks them
            done = end
    if done != size[1]:
        raise OSError("image file is truncated")


def _box_reduced(strips: Iterator[tuple[int, np.ndarray]], full: tuple[int, int], size: tuple[int, int],
                 mode: str, strip: int) -> Iterator[Image.Image]:
    """An image of `full` size and `mode`, given as (first row, pixels) strips of `strip` rows at most
    top to bottom, reduced to `size` by a box filter, a band of rows at a time, in `mode`.

    Each output pixel is the mean of the original pixels Pillow's `Image.BOX`
    averages for it (`box_windows`), rounded half up (16-bit, 32-bit and float
    images: the exact mean, as float). The sums are exact, always made in the
    same order: each strip's rows are summed across their columns' windows, and
    those row sums are added up down the rows' windows, carrying the rows of a
    window that crosses into the next strip. Pillow rounds its first pass to 8
    bits (horizontal or vertical first, as it picks), so a pixel may differ
    from its resize by 1 level.

    LA and RGBA are averaged as Pillow does: the colour premultiplied by alpha,
    rounded to 8 bits, averaged, then divided by the mean alpha (truncated;
    kept as it is where that alpha is 0 or 255). Pillow's rounded means of
    colour and alpha may each differ from these by 1, which the division
    magnifies by 255 / alpha: a pixel may differ from its resize by up to
    1 + 510 / (alpha - 1) levels (1 where opaque), and where the mean alpha is 0
    or 1 its colour is undefined (the overlay drops alpha, as Pillow's
    `convert("RGB")` does).
    Memory: a strip, its row sums and a band of the output.
    """
    width, height = full
    channels = Image.getmodebands(mode)
    left, right = box_windows(width, size[0])
    top, bottom = box_windows(height, size[1])
    widths = (right - left)[:, None]
    exact = mode not in ("I", "F")  # integers, rounded half up; "I" and "F" as float means
    highest = 65535 if mode.startswith("I;16") else 255
    dtype = (np.float64 if not exact else np.int32
             if highest * width * (strip + height // size[1] + 2) < 2 ** 31 else np.int64)
    carried = np.zeros((0, size[0], channels), dtype=dtype)  # row sums of rows still to be used
    first = 0  # the original row `carried` starts at
    done = 0  # output rows made
    for start, pixels in strips:
        count = len(pixels)
        if mode in ALPHA_MODES:
            pixels = _premultiplied(pixels)
        carried = np.concatenate([carried, _row_sums(pixels, left, right, dtype)])
        del pixels
        end = int(np.searchsorted(bottom, start + count, side="right"))  # output rows complete with this strip
        if end > done:
            band = np.empty((end - done, size[0], channels), dtype=np.float32 if not exact else
                            np.uint16 if highest > 255 else np.uint8)
            for row in range(done, end):
                sums = carried[top[row] - first:bottom[row] - first].sum(axis=0, dtype=dtype)
                area = widths * int(bottom[row] - top[row])
                band[row - done] = (2 * sums + area) // (2 * area) if exact else sums / area  # rounded half up
            if mode in ALPHA_MODES:
                _unpremultiply(band)
            yield _band_image(band, mode)
            done = end
            keep = min(int(top[done]), start + count) if done < size[1] else start + count
            carried, first = carried[keep - first:], keep
    if done != size[1]:
        raise OSError("image file is truncated")


def _premultiplied(pixels: np.ndarray) -> np.ndarray:
    """8-bit pixels with alpha last, their colour multiplied by alpha / 255 and rounded as Pillow's
    conversion to RGBa or La does."""
    out = np.empty_like(pixels)
    product = pixels[..., :-1].astype(np.uint32) * pixels[..., -1:] + 128
    out[..., :-1] = ((product >> 8) + product) >> 8
    out[..., -1] = pixels[..., -1]
    return out


def _unpremultiply(band: np.ndarray) -> None:
    """Divide premultiplied colour by alpha in place, as Pillow's conversion back from RGBa or La does:
    255 * colour // alpha, at most 255, the colour kept where alpha is 0 or 255."""
    alpha = band[..., -1:].astype(np.uint32)
    colour = band[..., :-1].astype(np.uint32)
    divided = np.minimum(255 * colour // np.maximum(alpha, 1), 255)
    band[..., :-1] = np.where((alpha == 0) | (alpha == 255), colour, divided)


def _band_image(band: np.ndarray, mode: str) -> Image.Image:
    """A band of `_box_reduced` as a Pillow image: in `mode`, or "I;16" or "F" for the deep modes."""
    if mode in DEEP_MODES:  # uint16: I;16, float32: F, in this machine's byte order
        return Image.fromarray(np.ascontiguousarray(band[..., 0], dtype=band.dtype.newbyteorder("=")))
    return Image.frombytes(mode, (band.shape[1], band.shape[0]), band.tobytes())


def _row_sums(pixels: np.ndarray, left: np.ndarray, right: np.ndarray, dtype: type, piece: int = 8) -> np.ndarray:
    """Each row's sum of `pixels` (rows, width, channels) over the column windows [left, right),
    `piece` rows at a time (the running sums are the width of the original)."""
    rows, width, channels = pixels.shape
    sums = np.empty((rows, len(left), channels), dtype=dtype)
    totals = np.zeros((min(piece, rows), width + 1, channels), dtype=dtype)
    for first in range(0, rows, piece):
        part = pixels[first:first + piece]
        np.cumsum(part, axis=1, dtype=dtype, out=totals[:len(part), 1:])
        np.subtract(totals[:len(part), right], totals[:len(part), left], out=sums[first:first + piece])
    return sums


def box_windows(length: int, reduced: int) -> tuple[np.ndarray, np.ndarray]:
    """[first, end) of the original's pixels that Pillow's `Image.BOX` resize of `length` pixels to
    `reduced` (at most `length`) averages for each: those whose centre lies within half a scale of
    the output pixel's centre, in Pillow's own double arithmetic."""
    scale = length / reduced
    support = 0.5 * scale
    centre = (np.arange(reduced) + 0.5) * scale
    low = np.maximum((centre - support + 0.5).astype(np.int64), 0)
    high = np.minimum((centre + support + 0.5).astype(np.int64), length)
    offsets = np.arange(int((high - low).max()))
    candidate = (offsets[None, :] + low[:, None] - centre[:, None] + 0.5) * (1.0 / scale)
    inside = (candidate > -0.5) & (candidate <= 0.5) & (offsets[None, :] < (high - low)[:, None])
    first = low + inside.argmax(axis=1)
    return first, first + inside.sum(axis=1)


def nearest_rows(height: int, rows: int) -> np.ndarray:
    """The original's row that Pillow's nearest-neighbour resize of `height` rows to `rows` takes for
    each: it steps through the original by height / rows from half a step, adding up in doubles."""
    step = height / rows
    steps = np.full(rows, step)
    steps[0] = step * 0.5
    return np.floor(np.cumsum(steps)).astype(np.int64)


def overlay_size(size: tuple[int, int]) -> tuple[int, int]:
    """The size a visualization is drawn at: the original's, scaled down to `MAX_OVERLAY_PIXELS` at most."""
    width, height = size
    if width * height <= MAX_OVERLAY_PIXELS:
        return size
    factor = math.sqrt(MAX_OVERLAY_PIXELS / (width * height))
    return max(1, math.floor(width * factor)), max(1, math.floor(height * factor))


def _overlay(size: tuple[int, int], cells: list[Cell], style: Style, scale: tuple[float, float]) -> Image.Image:
    """The fills, then the outlines, then the numbers, as one byte a pixel: which ink is on top there
    (`INKS`), 0 for none. Polygons are scaled by `scale`."""
    layer = Image.new("L", size, 0)
    draw = ImageDraw.Draw(layer)
    draw.fontmode = "1"  # an ink is an index: no anti-aliased edges blending two of them
    rings = list(_rings(cells, style, scale))
    for ink, ring in rings:
        if len(ring) >= 3:
            draw.polygon(ring, fill=ink)
    for ink, ring in rings:
        draw.line([*ring, ring[0]], fill=ink + LINE, width=style.stroke_width, joint="curve")
    if style.show_numbers:
        font = _font(style.font_size)
        for cell in cells:
            _number(draw, cell, font, style.font_size, scale)
    return layer


def _blend(base: Image.Image, layer: Image.Image, style: Style) -> None:
    """Paint each ink of `layer` onto `base` in place, in its colour and opacity."""
    colours = {
        EXTERNAL: (style.external, style.fill_alpha), INTERNAL: (style.internal, style.fill_alpha),
        EXTERNAL + LINE: (style.external, 255), INTERNAL + LINE: (style.internal, 255),
        DISC: ((255, 255, 255), 220), DISC_EDGE: ((0, 0, 0), 200), TEXT: ((0, 0, 0), 255),
    }
    used = layer.histogram()
    for ink, (colour, alpha) in colours.items():
        if alpha and used[ink]:
            base.paste(colour, (0, 0), layer.point([alpha if value == ink else 0 for value in range(256)]))


def _rings(cells: list[Cell], style: Style, scale: tuple[float, float]):
    """(ink, points) of every outline: each cell, then its holes, in cell order."""
    factor = np.asarray(scale)
    for cell in cells:
        yield EXTERNAL, [tuple(p) for p in (cell.polygon.points * factor).tolist()]
        for hole in cell.holes:
            yield INTERNAL, [tuple(p) for p in (hole.points * factor).tolist()]


def _number(draw: ImageDraw.ImageDraw, cell: Cell, font: ImageFont.ImageFont, size: int,
            scale: tuple[float, float]) -> None:
    """The cell's number on a white disc at a point inside the cell."""
    centre = cell.shape.centroid
    if not cell.shape.contains(centre):
        centre = cell.shape.representative_point()
    x, y = centre.x * scale[0], centre.y * scale[1]
    text = str(cell.number)
    left, top, right, bottom = draw.textbbox((x, y), text, font=font, anchor="mm")
    radius = max(right - left, bottom - top, size) / 2 + max(2, size // 5)
    draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=DISC, outline=DISC_EDGE,
                 width=max(1, size // 12))
    draw.text((x, y), text, fill=TEXT, font=font, anchor="mm")


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (ImportError, OSError):  # Pillow built without FreeType: a fixed bitmap font
        return ImageFont.load_default()


def _reduced(source: Image.Image, size: tuple[int, int]) -> tuple[Image.Image, float | None]:
    """The image at `size` in its own mode (1-bit and palette images by nearest neighbour; the source
    itself when it has that size), and for 16-bit, 32-bit and float images the original's maximum."""
    _draft(source, size)
    peak = _peak(source)
    source.load()
    return (source if source.size == size else source.resize(size, Image.Resampling.BOX)), peak


def _peak(source: Image.Image) -> float | None:
    """The maximum of a 16-bit, 32-bit or float image (at least some positive number), else None."""
    if source.mode not in DEEP_MODES:
        return None
    _, high = source.getextrema()
    return float(high) if high and high > 0 else 1.0


def _as_rgb(image: Image.Image, peak: float | None) -> Image.Image:
    """8-bit RGB; 16-bit, 32-bit and float images are scaled to `peak` first."""
    if peak is not None:
        pixels = np.asarray(image, dtype=np.float32)
        return Image.fromarray((np.clip(pixels / peak, 0, 1) * 255).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


def _rgb(hex_colour: str) -> RGB:
    return int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16)
