"""PNG files a band of rows at a time, so that an image at the pixel cap is never held whole.

`PngRows` reads a non-interlaced 8-bit-or-less PNG (1, 2, 4, 8-bit greyscale,
palette, RGB, RGBA, greyscale with alpha) or 16-bit greyscale PNG top to bottom,
as often as asked: its compressed data is inflated a strip at a time and each
strip's filters are undone by Pillow's own decoder, on a small 8-bit PNG of the
same bytes a pixel (which the filters step back by) made of the strip's
filtered rows and, unfiltered in front of them, the row above (which the
filters refer to). A strip comes back as a Pillow image in the mode
`Image.open` gives the file, pixel for pixel the rows of the image Pillow
decodes at once, or as an array of its numbers (`array`). Other PNGs (16-bit
colour, whose 6 or 8 bytes a pixel no 8-bit PNG has, and interlaced ones) are
not streamed: `PngRows.open` returns None and the caller decodes them whole.

`PngWriter` writes an 8-bit RGB PNG from bands of rows, with zlib at a given
level over the rows filtered as libpng's heuristic picks (per row, the filter
whose output has the smallest sum of absolute values).
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, PngImagePlugin

SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: colour type: channels
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
#: a row of bytes, as Pillow decodes it losslessly: the mini PNG's colour type by bytes a pixel
BYTE_IMAGES = {1: (0, "L"), 2: (4, "LA"), 3: (2, "RGB"), 4: (6, "RGBA")}
IDAT_SIZE = 1 << 16  #: compressed bytes read or written at a time


class PngRows:
    """The rows of one PNG file, strip by strip (`strips()`)."""

    def __init__(self, file: BinaryIO, header: tuple[int, int, int, int], palette: bytes | None,
                 first: tuple[bytes, int]) -> None:
        self.width, self.height, depth, colour = header
        self.mode, self.rawmode = PngImagePlugin._MODES[(depth, colour)]  # noqa: SLF001 - Pillow's own table
        bits = depth * CHANNELS[colour]
        self.row_bytes = (self.width * bits + 7) // 8
        self.pixel_bytes = max(1, bits // 8)  #: what the filters step back by
        self._file = file
        self._palette = palette
        self._first = first  #: the first IDAT chunk's (length, offset)

    @classmethod
    def open(cls, path: Path | BinaryIO) -> PngRows | None:
        """The file's rows (at `path`, or an open binary file, which it closes), or None when it is not a
        PNG this reads (its caller decodes it whole); raises OSError when it cannot be read."""
        file = path if hasattr(path, "read") else open(path, "rb")  # noqa: SIM115 - closed by close()
        try:
            if file.read(8) != SIGNATURE:
                file.close()
                return None
            header = palette = None
            while True:
                length, kind = _chunk_head(file)
                if kind == b"IHDR":
                    width, height, depth, colour, method, filters, interlace = struct.unpack(">IIBBBBB", file.read(13))
                    if (method, filters, interlace) != (0, 0, 0) or (depth > 8 and (depth, colour) != (16, 0)) \
                            or (depth, colour) not in PngImagePlugin._MODES:  # noqa: SLF001
                        file.close()
                        return None
                    header = (width, height, depth, colour)
                    file.seek(4, 1)
                elif kind == b"PLTE":
                    palette = file.read(length)
                    file.seek(4, 1)
                elif kind == b"IDAT":
                    if header is None:
                        raise OSError("PNG without a header")
                    return cls(file, header, palette, (length, file.tell()))
                elif kind == b"IEND":
                    raise OSError("PNG without image data")
                else:
                    file.seek(length + 4, 1)
        except BaseException:
            file.close()
            raise

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> PngRows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def strips(self, rows: int) -> Iterator[tuple[int, int, bytes]]:
        """(first row, count, the rows' unfiltered bytes) of the next `rows` rows at most, top to
        bottom; `image` makes them a Pillow image, `array` an array. Each call starts at the top."""
        stride = self.row_bytes + 1
        colour, byte_mode = BYTE_IMAGES[self.pixel_bytes]
        width = self.row_bytes // self.pixel_bytes
        above = b""  # the row above the strip, unfiltered
        for top, filtered in self._filtered(rows * stride):
            count = len(filtered) // stride
            if above:
                filtered = b"\x00" + above + filtered
            mini = _png((width, count + bool(above)), 8, colour, zlib.compress(filtered, 1))
            with Image.open(io.BytesIO(mini)) as decoded:
                if decoded.mode != byte_mode:
                    raise OSError(f"PNG strip decoded as {decoded.mode}")
                data = decoded.tobytes()[len(above):]
            above = data[-self.row_bytes:]
            yield top, count, data

    def image(self, data: bytes, count: int, chosen: np.ndarray | None = None) -> Image.Image:
        """The image of `count` rows of unfiltered `data`, or of the rows `chosen` among them, in the
        mode and palette `Image.open` gives the file."""
        if chosen is not None:
            data = np.frombuffer(data, dtype=np.uint8).reshape(count, self.row_bytes)[chosen].tobytes()
            count = len(chosen)
        image = Image.frombytes(self.mode, (self.width, count), data, "raw", self.rawmode)
        if self.mode == "P" and self._palette is not None:
            image.putpalette(self._palette, "RGB")
        return image

    def array(self, data: bytes, count: int) -> np.ndarray:
        """`count` rows of unfiltered `data` as numbers, (rows, width, channels): 8-bit ones as
        `image` decodes them (greyscale of 1, 2 or 4 bits scaled to 0-255), 16-bit greyscale as they are."""
        if self.mode == "I;16":
            return np.frombuffer(data, dtype=">u2").reshape(count, self.width, 1)
        return np.asarray(self.image(data, count)).reshape(count, self.width, -1)

    def _filtered(self, size: int) -> Iterator[tuple[int, bytes]]:
        """(first row, `size` bytes of filtered rows at most, whole rows), from the compressed data."""
        stride = self.row_bytes + 1
        remaining = self.height * stride
        inflate = zlib.decompressobj()
        pending = bytearray()
        length, offset = self._first
        self._file.seek(offset)
        left_in_chunk = length
        top = 0
        while remaining:
            want = min(size, remaining)
            while len(pending) < want:
                if inflate.unconsumed_tail:
                    data = inflate.unconsumed_tail
                else:
                    if not left_in_chunk:
                        self._file.seek(4, 1)  # the CRC
                        left_in_chunk, kind = _chunk_head(self._file)
                        if kind != b"IDAT":
                            raise OSError("image file is truncated")
                    data = self._file.read(min(left_in_chunk, IDAT_SIZE))
                    if not data:
                        raise OSError("image file is truncated")
                    left_in_chunk -= len(data)
                try:
                    pending += inflate.decompress(data, want - len(pending))
                except zlib.error as error:
                    raise OSError(f"broken PNG data: {error}") from error
                if inflate.eof and len(pending) < want:
                    raise OSError("image file is truncated")
            chunk = bytes(pending[:want])
            del pending[:want]
            remaining -= want
            yield top, chunk
            top += want // stride


class PngWriter:
    """An 8-bit RGB PNG of `size`, written band by band (`write`), finished by `close()`."""

    def __init__(self, size: tuple[int, int], level: int) -> None:
        self.size = size
        self._out = io.BytesIO()
        self._out.write(SIGNATURE)
        _write_chunk(self._out, b"IHDR", struct.pack(">IIBBBBB", size[0], size[1], 8, 2, 0, 0, 0))
        self._deflate = zlib.compressobj(level)
        self._pending = bytearray()
        self._above = np.zeros(3 * size[0], dtype=np.uint8)
        self._rows = 0

    def write(self, band: Image.Image, piece: int = 16) -> None:
        """The next rows: an RGB image as wide as the PNG, filtered and compressed `piece` rows at a time."""
        if band.mode != "RGB" or band.width != self.size[0]:
            raise ValueError(f"a band of {band.mode} {band.size} for an RGB PNG of {self.size}")
        rows = np.frombuffer(band.tobytes(), dtype=np.uint8).reshape(band.height, 3 * band.width)
        for first in range(0, band.height, piece):
            part = rows[first:first + piece]
            self._pending += self._deflate.compress(_filter(part, self._above))
            self._above = part[-1]
            if len(self._pending) >= IDAT_SIZE:
                _write_chunk(self._out, b"IDAT", bytes(self._pending))
                self._pending.clear()
        self._rows += band.height

    def close(self) -> bytes:
        if self._rows != self.size[1]:
            raise ValueError(f"{self._rows} rows written of {self.size[1]}")
        self._pending += self._deflate.flush()
        _write_chunk(self._out, b"IDAT", bytes(self._pending))
        _write_chunk(self._out, b"IEND", b"")
        return self._out.getvalue()


def _filter(rows: np.ndarray, above: np.ndarray, step: int = 3) -> bytes:
    """The rows (uint8, one per line) as PNG filtered lines: each the filter type byte and its bytes,
    with the filter of the smallest sum of absolute values (as signed bytes)."""
    x = rows.astype(np.int16)
    up = np.vstack([above[None, :], rows[:-1]]).astype(np.int16)
    left = np.zeros_like(x)
    left[:, step:] = x[:, :-step]
    corner = np.zeros_like(x)
    corner[:, step:] = up[:, :-step]
    guess = left + up - corner
    near_left, near_up, near_corner = np.abs(guess - left), np.abs(guess - up), np.abs(guess - corner)
    paeth = np.where((near_left <= near_up) & (near_left <= near_corner), left,
                     np.where(near_up <= near_corner, up, corner))
    candidates = np.stack([x, x - left, x - up, x - (left + up) // 2, x - paeth]).astype(np.uint8)
    signed = candidates.view(np.int8).astype(np.int16)
    chosen = np.abs(signed).sum(axis=2).argmin(axis=0)  # per row; the lowest filter type on a tie
    lines = np.empty((len(rows), rows.shape[1] + 1), dtype=np.uint8)
    lines[:, 0] = chosen
    lines[:, 1:] = candidates[chosen, np.arange(len(rows))]
    return lines.tobytes()


def _png(size: tuple[int, int], depth: int, colour: int, compressed: bytes) -> bytes:
    out = io.BytesIO()
    out.write(SIGNATURE)
    _write_chunk(out, b"IHDR", struct.pack(">IIBBBBB", size[0], size[1], depth, colour, 0, 0, 0))
    _write_chunk(out, b"IDAT", compressed)
    _write_chunk(out, b"IEND", b"")
    return out.getvalue()


def _chunk_head(file: BinaryIO) -> tuple[int, bytes]:
    head = file.read(8)
    if len(head) < 8:
        raise OSError("image file is truncated")
    length, kind = struct.unpack(">I4s", head)
    return length, kind


def _write_chunk(out: BinaryIO, kind: bytes, data: bytes) -> None:
    out.write(struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data)))
