"""TIFF files a band of rows at a time, through tifffile, so that a striped or tiled original is never decoded whole.

`TiffRows.open` reads the first page of a TIFF (the one Pillow shows) when
tifffile gives its pixels as Pillow does: 8-bit, 16-bit or float greyscale,
8-bit RGB, 8-bit RGB with unassociated alpha, samples interleaved. Its strips
or tiles are decoded one at a time by tifffile (`TiffPage.segments`, one
thread, reading 1 MiB at a time), a row of tiles making a strip; an
uncompressed image stored in one piece is read straight from the file a strip
of rows at a time. Other TIFFs (planar, palette, 1-bit, CMYK, YCbCr,
associated alpha, fill order 2, or a compression tifffile cannot decode
without imagecodecs, such as LZW and JPEG, when it is not installed) are not
streamed: `open` returns None and the caller decodes them whole with Pillow.
One compressed strip holding the whole image is decoded at once (by tifffile,
in its own samples: no more than Pillow would hold).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tifffile

BUFFER_BYTES = 1 << 20  #: compressed bytes tifffile reads at a time
#: (photometric, samples, extra samples, dtype) of the pages streamed: the mode Pillow opens them in
MODES = {
    (tifffile.PHOTOMETRIC.MINISBLACK, 1, (), "uint8"): "L",
    (tifffile.PHOTOMETRIC.MINISBLACK, 1, (), "uint16"): "I;16",
    (tifffile.PHOTOMETRIC.MINISBLACK, 1, (), "float32"): "F",
    (tifffile.PHOTOMETRIC.RGB, 3, (), "uint8"): "RGB",
    (tifffile.PHOTOMETRIC.RGB, 4, (tifffile.EXTRASAMPLE.UNASSALPHA,), "uint8"): "RGBA",
}
SAME_MODE = {"I;16B": "I;16", "I;16L": "I;16"}  #: Pillow's names for the same pixels in the file's byte order


class TiffRows:
    """The rows of one TIFF page, strip by strip (`strips()`)."""

    def __init__(self, tiff: tifffile.TiffFile, page: tifffile.TiffPage, mode: str) -> None:
        self._tiff = tiff
        self._page = page
        self.mode = mode
        self.height, self.width = page.shape[:2]
        self.channels = page.samplesperpixel

    @classmethod
    def open(cls, path: Path, mode: str) -> TiffRows | None:
        """The first page's rows when Pillow opens the file in `mode` and they can be streamed, else None:
        the caller decodes the file whole with Pillow, which also reports a file neither can read."""
        try:
            tiff = tifffile.TiffFile(path)
        except Exception:  # noqa: BLE001 - whatever tifffile cannot parse, Pillow may: it decides
            return None
        try:
            page = tiff.pages.first
            key = (page.photometric, page.samplesperpixel, tuple(page.extrasamples), page.dtype.name
                   if page.dtype is not None else None)
            if (MODES.get(key) == SAME_MODE.get(mode, mode) and page.fillorder == 1 and not page.is_subsampled
                    and (page.samplesperpixel == 1 or page.planarconfig == tifffile.PLANARCONFIG.CONTIG)
                    and cls._decodable(page)):
                return cls(tiff, page, MODES[key])
        except Exception:  # noqa: BLE001 - as above
            pass
        tiff.close()
        return None

    @staticmethod
    def _decodable(page: tifffile.TiffPage) -> bool:
        """Whether tifffile can decode the page's compression and predictor here (some need imagecodecs)."""
        try:
            return ((page.compression == tifffile.COMPRESSION.NONE
                     or tifffile.TIFF.DECOMPRESSORS[page.compression] is not None)
                    and (page.predictor == tifffile.PREDICTOR.NONE
                         or tifffile.TIFF.UNPREDICTORS[page.predictor] is not None))
        except (KeyError, ValueError, ImportError):
            return False

    def close(self) -> None:
        self._tiff.close()

    def __enter__(self) -> TiffRows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def strips(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, pixels (rows, width, channels)) of the next `rows` rows at most, top to bottom."""
        for top, pixels in self._pieces(rows):
            for first in range(0, len(pixels), rows):
                yield top + first, pixels[first:first + rows]

    def _pieces(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, pixels) of the image in the pieces it is stored in, top to bottom."""
        page = self._page
        if page.compression == tifffile.COMPRESSION.NONE and page.is_contiguous:  # from the file, `rows` at a time
            dtype = page.dtype.newbyteorder(page.parent.byteorder)
            row_bytes = self.width * self.channels * dtype.itemsize
            handle = page.parent.filehandle
            for top in range(0, self.height, rows):
                count = min(rows, self.height - top)
                handle.seek(page.dataoffsets[0] + top * row_bytes)
                data = handle.read(count * row_bytes)
                if len(data) < count * row_bytes:
                    raise OSError("image file is truncated")
                yield top, np.frombuffer(data, dtype=dtype).reshape(count, self.width, self.channels)
            return
        band, band_top = None, 0  # a row of tiles being gathered
        try:
            for data, index, _ in page.segments(maxworkers=1, buffersize=BUFFER_BYTES):
                top, left = index[2], index[3]
                if data is None:
                    raise OSError("image file is truncated")
                data = data[0]  # (rows, columns, samples)
                if not page.is_tiled:
                    yield top, data[:self.height - top]
                    continue
                if band is not None and top != band_top:
                    yield band_top, band
                    band = None
                if band is None:
                    band, band_top = np.empty((min(len(data), self.height - top), self.width, self.channels),
                                              dtype=data.dtype), top
                width = min(data.shape[1], self.width - left)
                band[:, left:left + width] = data[:len(band), :width]
        except (ValueError, IndexError, tifffile.TiffFileError) as error:
            raise OSError(f"broken TIFF data: {error}") from error
        if band is not None:
            yield band_top, band
