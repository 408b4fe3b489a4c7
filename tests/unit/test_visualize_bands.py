"""An overlay made a band of rows at a time, from an original streamed a strip at a time, has the
pixels of the one drawn at once from the original decoded whole, whatever the PNG's filters, bit
depth, palette or the reduction; a greyscale or RGB original reduced by the streamed box filter is
within 1 level of Pillow's box filter."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

from exportd.domain.options import ExportOptions
from exportd.export import visualize
from exportd.export.pngstream import PngRows, PngWriter
from exportd.export.source import ImageData, PolygonData
from exportd.export.visualize import BOX_MODES, Style, box_windows, nearest_rows, render

#: (bit depth, colour type) of every PNG `PngRows` streams, with bytes a pixel for the filters
KINDS = [(1, 0), (2, 0), (4, 0), (8, 0), (8, 2), (1, 3), (2, 3), (4, 3), (8, 3), (8, 4), (8, 6)]
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_with_every_filter(raw: np.ndarray, width: int, depth: int, colour: int, rng) -> bytes:
    """A PNG of the unfiltered rows `raw` (padding bits and all), each row with a random filter type,
    the compressed data split over several IDAT chunks."""
    step = max(1, depth * CHANNELS[colour] // 8)
    lines, above = [], np.zeros(raw.shape[1], dtype=np.int16)
    for row in raw.astype(np.int16):
        left = np.concatenate([np.zeros(step, np.int16), row[:-step]])
        corner = np.concatenate([np.zeros(step, np.int16), above[:-step]])
        guess = left + above - corner
        pa, pb, pc = np.abs(guess - left), np.abs(guess - above), np.abs(guess - corner)
        paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, above, corner))
        kind = int(rng.integers(0, 5))
        filtered = [row, row - left, row - above, row - (left + above) // 2, row - paeth][kind]
        lines.append(bytes([kind]) + (filtered & 0xFF).astype(np.uint8).tobytes())
        above = row
    data = zlib.compress(b"".join(lines), 6)
    parts = [data[i:i + 97] for i in range(0, len(data), 97)]
    palette = chunk(b"PLTE", rng.integers(0, 256, 3 * 2 ** min(depth, 8), dtype=np.uint8).tobytes()) \
        if colour == 3 else b""
    header = struct.pack(">IIBBBBB", width, len(raw), depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"tEXt", b"k\x00v") + palette
            + b"".join(chunk(b"IDAT", part) for part in parts) + chunk(b"IEND", b""))


@pytest.mark.parametrize(("depth", "colour"), KINDS)
def test_png_rows_strip_by_strip_are_the_rows_pillow_decodes(tmp_path, depth, colour):
    rng = np.random.default_rng(depth * 10 + colour)
    width, height = 37, 29  # odd: sub-byte rows end in padding bits, which the filters carry on
    row_bytes = (width * depth * CHANNELS[colour] + 7) // 8
    raw = rng.integers(0, 256, (height, row_bytes), dtype=np.uint8)
    path = tmp_path / "f.png"
    path.write_bytes(png_with_every_filter(raw, width, depth, colour, rng))
    with Image.open(path) as whole:
        whole.load()
        with PngRows.open(path) as rows:
            assert rows.mode == whole.mode
            strips = [(top, rows.image(data, count)) for top, count, data in rows.strips(4)]
    assert [top for top, _ in strips] == list(range(0, height, 4))
    for top, strip in strips:
        expected = whole.crop((0, top, width, top + strip.height))
        assert strip.tobytes() == expected.tobytes(), top
        assert strip.convert("RGB").tobytes() == expected.convert("RGB").tobytes(), top


def test_png_rows_refuse_what_they_do_not_stream_and_report_a_cut_file(tmp_path):
    Image.fromarray(np.arange(600, dtype=np.uint16).reshape(20, 30)).save(tmp_path / "deep.png")
    assert PngRows.open(tmp_path / "deep.png") is None  # 16-bit: decoded whole
    Image.new("RGB", (30, 20)).save(tmp_path / "f.jpg")
    assert PngRows.open(tmp_path / "f.jpg") is None
    data = bytearray(png_with_every_filter(np.zeros((20, 30), np.uint8), 30, 8, 0, np.random.default_rng(0)))
    data[8 + 8 + 12] = 1  # the interlace byte of IHDR
    (tmp_path / "adam7.png").write_bytes(bytes(data))
    assert PngRows.open(tmp_path / "adam7.png") is None
    rng = np.random.default_rng(1)
    whole = png_with_every_filter(rng.integers(0, 256, (200, 90), dtype=np.uint8), 90, 8, 0, rng)
    (tmp_path / "cut.png").write_bytes(whole[:len(whole) // 2])
    with PngRows.open(tmp_path / "cut.png") as rows, pytest.raises(OSError):
        list(rows.strips(8))


def test_nearest_rows_are_the_rows_pillow_s_nearest_resize_takes():
    rng = np.random.default_rng(2)
    for height, rows in [(10_000, 4096), (7001, 2993), *((int(h), int(rng.integers(1, h))) for h in
                                                           rng.integers(2, 50_000, 200))]:
        index = Image.fromarray(np.arange(height, dtype=np.int32).reshape(height, 1))
        taken = np.asarray(index.resize((1, rows), Image.Resampling.NEAREST)).ravel()
        assert (nearest_rows(height, rows) == taken).all(), (height, rows)


@pytest.mark.parametrize(("depth", "colour"), [kind for kind in KINDS if kind[1] in (0, 2) and kind[0] > 1])
def test_the_streamed_box_filter_is_within_1_level_of_pillow_s(tmp_path, depth, colour):
    rng = np.random.default_rng(100 + depth * 10 + colour)
    path = tmp_path / "f.png"
    identical = total = 0
    sizes = [((250, 250), (102, 102)), ((5120, 7), (4096, 5)), ((33, 1000), (13, 409)), ((64, 64), (32, 32)),
             ((97, 89), (97, 40)), ((97, 89), (10, 89)), ((9, 9), (1, 1))]
    sizes += [((w, h), (int(rng.integers(1, w + 1)), int(rng.integers(1, h + 1))))
              for w, h in rng.integers(2, 400, (25, 2)).tolist()]
    for (width, height), size in sizes:
        row_bytes = (width * depth * CHANNELS[colour] + 7) // 8
        noise = rng.integers(0, 256, (height, row_bytes), dtype=np.uint8)
        if rng.random() < 0.5:  # or smooth, with edges
            ramp = np.add.outer(np.arange(height) * 3, np.arange(row_bytes) * 2) % 256
            noise = np.where(noise < 16, noise, ramp).astype(np.uint8)
        path.write_bytes(png_with_every_filter(noise, width, depth, colour, rng))
        with Image.open(path) as whole:
            assert whole.mode in BOX_MODES
            expected = np.asarray(whole.resize(size, Image.Resampling.BOX), dtype=np.int16)
        with PngRows.open(path) as rows:
            bands = list(visualize._box_streamed(rows, size, int(rng.integers(1, 40))))  # noqa: SLF001
        got = np.concatenate([np.asarray(band) for band in bands])
        assert got.shape == expected.shape, (width, height, size)
        difference = np.abs(got - expected)
        assert difference.max() <= 1, (width, height, size)
        identical += int((difference == 0).sum())
        total += difference.size
    assert identical >= 0.7 * total, identical / total  # most pixels are Pillow's exactly


def test_box_windows_are_the_pixels_pillow_s_box_filter_averages():
    rng = np.random.default_rng(6)
    for length, reduced in [(10_000, 4096), (5120, 4096), (7, 2), (100, 100), (12, 5),
                            *((int(n), int(rng.integers(1, n + 1))) for n in rng.integers(1, 3000, 100))]:
        first, end = box_windows(length, reduced)
        index = np.arange(length, dtype=np.float32).reshape(1, length)
        means = np.asarray(Image.fromarray(index, "F").resize((reduced, 1), Image.Resampling.BOX)).ravel()
        squares = np.asarray(Image.fromarray(index ** 2, "F").resize((reduced, 1), Image.Resampling.BOX)).ravel()
        expected_first = (first + end - 1) / 2
        expected_squares = np.array([np.mean(np.arange(a, b, dtype=np.float64) ** 2) for a, b in zip(first, end)])
        assert np.allclose(means, expected_first, rtol=1e-5), (length, reduced)
        assert np.allclose(squares, expected_squares, rtol=1e-4), (length, reduced)


def test_the_png_writer_s_bands_make_the_image(tmp_path):
    rng = np.random.default_rng(3)
    smooth = np.add.outer(np.arange(70), np.arange(53)).astype(np.uint8)
    picture = Image.fromarray(np.dstack([smooth, rng.integers(0, 256, (70, 53), dtype=np.uint8), smooth[::-1]]))
    writer = PngWriter(picture.size, 3)
    for top in (0, 1, 33, 70):
        if top < 70:
            writer.write(picture.crop((0, top, 53, {0: 1, 1: 33, 33: 70}[top])))
    back = Image.open(io.BytesIO(writer.close()))
    assert back.mode == "RGB" and back.tobytes() == picture.tobytes()
    short = PngWriter(picture.size, 3)
    short.write(picture.crop((0, 0, 53, 10)))
    with pytest.raises(ValueError):
        short.close()


def originals(tmp_path):
    """(name, saved image, save options): every streamed kind, and some decoded whole."""
    rng = np.random.default_rng(4)
    w, h = 211, 157
    ramp = np.add.outer(np.arange(h) * 255 // h, np.arange(w) * 255 // w).astype(np.uint8)
    colours = np.dstack([ramp, ramp[::-1], rng.integers(0, 256, (h, w), dtype=np.uint8)])
    one = Image.new("1", (w, h))
    ImageDraw.Draw(one).ellipse((20, 15, 190, 140), fill=1)
    return [
        ("one.png", one, {}),
        ("grey.png", Image.fromarray(ramp), {}),
        ("rgb.png", Image.fromarray(colours), {}),
        ("rgba.png", Image.fromarray(np.dstack([colours, ramp])), {}),
        ("la.png", Image.fromarray(np.dstack([ramp, ramp[::-1]]), "LA"), {}),
        ("p8.png", Image.fromarray(colours).quantize(77), {}),
        ("p4.png", Image.fromarray(colours).quantize(9), {"bits": 4}),
        ("deep.png", Image.fromarray(ramp.astype(np.uint16) * 251), {}),
        ("photo.jpg", Image.fromarray(colours), {}),
    ]


@pytest.mark.parametrize("reduced", [False, True])
def test_an_overlay_made_band_by_band_has_the_pixels_of_one_drawn_at_once(tmp_path, monkeypatch, reduced):
    angles = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    style = Style.of(ExportOptions(visualization_options={"show_numbers": True, "stroke_width": 3,
                                                          "font_size": 12}).visualization_options)
    if reduced:  # drawn at about 0.37 of the original's side: nearest neighbour or a box filter
        monkeypatch.setattr(visualize, "MAX_OVERLAY_PIXELS", 211 * 157 // 7)
    for name, picture, options in originals(tmp_path):
        path = tmp_path / name
        picture.save(path, **options)
        cells = (PolygonData("a", "external", np.c_[100 + 70 * np.cos(angles), 80 + 60 * np.sin(angles)]),
                 PolygonData("h", "internal", np.c_[100 + 20 * np.cos(angles), 80 + 20 * np.sin(angles)], "a"),
                 PolygonData("b", "external", ((5.5, 5), (60, 10), (30, 150))))
        image = ImageData("i", name, picture.width, picture.height, path, cells)
        monkeypatch.setattr(visualize, "BAND_PIXELS", 1 << 30)
        at_once, warnings = render(image, style)
        monkeypatch.setattr(visualize, "BAND_PIXELS", 900)  # bands and strips of a few rows
        banded, banded_warnings = render(image, style)
        assert banded_warnings == warnings
        expected, got = Image.open(io.BytesIO(at_once)), Image.open(io.BytesIO(banded))
        assert got.mode == expected.mode == "RGB" and got.size == expected.size, name
        if reduced and picture.mode in BOX_MODES and name.endswith(".png"):  # the streamed box filter
            difference = np.abs(np.asarray(got, np.int16) - np.asarray(expected, np.int16))
            assert difference.max() <= 1 and (difference == 0).mean() > 0.7, name
        else:
            assert got.tobytes() == expected.tobytes(), name
        assert reduced == (got.size != picture.size), name


@pytest.mark.parametrize("reduced", [False, True])
def test_a_damaged_original_made_band_by_band_is_a_warning(tmp_path, monkeypatch, reduced):
    rng = np.random.default_rng(5)
    data = png_with_every_filter(rng.integers(0, 256, (300, 200), dtype=np.uint8), 200, 8, 0, rng)
    path = tmp_path / "cut.png"
    path.write_bytes(data[:len(data) * 2 // 3])
    monkeypatch.setattr(visualize, "BAND_PIXELS", 900)
    if reduced:  # by the streamed box filter
        monkeypatch.setattr(visualize, "MAX_OVERLAY_PIXELS", 200 * 300 // 5)
    cell = PolygonData("a", "external", ((10, 10), (150, 20), (60, 250)))
    png, warnings = render(ImageData("i", "cut.png", 200, 300, path, (cell,)), Style.of(
        ExportOptions().visualization_options))
    assert png is None
    assert warnings == ["cut.png: the original file cannot be read (damaged, or not an image); no visualization"]
