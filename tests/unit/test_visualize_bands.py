"""An overlay made a band of rows at a time, from an original streamed a strip at a time, has the
pixels of the one drawn at once from the original decoded whole, whatever the PNG's filters, bit
depth, palette or the reduction; an original reduced by the banded box filter is within 1 level of
Pillow's box filter, or with alpha within the bound its rounding allows (`alpha_bound`)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageDraw, ImageFile, TiffImagePlugin

from exportd.domain.options import ExportOptions
from exportd.export import visualize
from exportd.export.pngstream import PngRows, PngWriter
from exportd.export.tiffstream import TiffRows
from exportd.export.source import ImageData, PolygonData
from exportd.export.visualize import BOX_MODES, Style, box_windows, nearest_rows, render

#: (bit depth, colour type) of every PNG `PngRows` streams, with bytes a pixel for the filters
KINDS = [(1, 0), (2, 0), (4, 0), (8, 0), (16, 0), (8, 2), (1, 3), (2, 3), (4, 3), (8, 3), (8, 4), (8, 6)]
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
    deep = png_with_every_filter(np.zeros((20, 30 * 6), np.uint8), 30, 16, 2, np.random.default_rng(0))
    (tmp_path / "deep.png").write_bytes(deep)
    assert Image.open(tmp_path / "deep.png").mode == "RGB"
    assert PngRows.open(tmp_path / "deep.png") is None  # 16-bit colour: decoded whole
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


@pytest.mark.parametrize("layout", [{}, {"rowsperstrip": 7}, {"compression": "zlib", "rowsperstrip": 5},
                                    {"tile": (16, 32)}, {"tile": (32, 16), "compression": "zlib", "predictor": True},
                                    {"byteorder": ">"}, {"byteorder": ">", "tile": (16, 16), "compression": "zlib"}])
@pytest.mark.parametrize("kind", ["uint8", "uint16", "float32", "rgb", "rgba"])
def test_tiff_rows_strip_by_strip_are_the_pixels_tifffile_and_pillow_decode(tmp_path, layout, kind):
    rng = np.random.default_rng(7)
    shape = {"rgb": (45, 70, 3), "rgba": (45, 70, 4)}.get(kind, (45, 70))
    pixels = rng.integers(0, 60_000 if kind == "uint16" else 256, shape).astype("uint8" if kind in ("rgb", "rgba")
                                                                                else kind)
    extra = {"extrasamples": ["unassalpha"]} if kind == "rgba" else {}
    if kind == "float32":  # a float predictor needs imagecodecs to write
        layout = {key: value for key, value in layout.items() if key != "predictor"}
    tifffile.imwrite(tmp_path / "f.tif", pixels, photometric="rgb" if pixels.ndim == 3 else "minisblack",
                     **layout, **extra)
    with Image.open(tmp_path / "f.tif") as opened:
        mode = opened.mode
    with TiffRows.open(tmp_path / "f.tif", mode) as rows:
        strips = list(rows.strips(4))
    assert [top for top, _ in strips] == list(np.cumsum([0] + [len(strip) for _, strip in strips[:-1]]))
    assert all(1 <= len(strip) <= 4 for _, strip in strips)  # at most as asked, or as the file's pieces are
    got = np.concatenate([strip for _, strip in strips])
    assert (got.reshape(pixels.shape) == pixels).all()


def test_tiff_rows_refuse_what_they_do_not_stream(tmp_path):
    rgb = np.zeros((20, 30, 3), np.uint8)
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate")
    tifffile.imwrite(tmp_path / "cmyk.tif", np.zeros((20, 30, 4), np.uint8), photometric="separated")
    Image.fromarray(rgb).quantize(4).save(tmp_path / "palette.tif")
    Image.new("1", (30, 20)).save(tmp_path / "bits.tif")
    for name in ("planar.tif", "cmyk.tif", "palette.tif", "bits.tif"):
        with Image.open(tmp_path / name) as opened:
            assert TiffRows.open(tmp_path / name, opened.mode) is None, name
    tifffile.imwrite(tmp_path / "grey.tif", np.zeros((20, 30), np.uint8))
    assert TiffRows.open(tmp_path / "grey.tif", "RGB") is None  # Pillow sees it otherwise
    (tmp_path / "cut.tif").write_bytes((tmp_path / "grey.tif").read_bytes()[:-300])
    with TiffRows.open(tmp_path / "cut.tif", "L") as rows, pytest.raises(OSError):
        list(rows.strips(4))


def box_streamed(rows: PngRows, size: tuple[int, int], strip: int) -> np.ndarray:
    """The PNG reduced by the banded box filter from its strips, as `_source_bands` does."""
    strips = ((top, rows.array(data, count)) for top, count, data in rows.strips(strip))
    bands = visualize._box_reduced(strips, (rows.width, rows.height), size, rows.mode, strip)  # noqa: SLF001
    return np.concatenate([np.asarray(band).reshape(band.height, band.width, -1) for band in bands])


def box_sizes(rng) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(original, reduced) sizes: some chosen, most random."""
    sizes = [((250, 250), (102, 102)), ((5120, 7), (4096, 5)), ((33, 1000), (13, 409)), ((64, 64), (32, 32)),
             ((97, 89), (97, 40)), ((97, 89), (10, 89)), ((9, 9), (1, 1))]
    return sizes + [((w, h), (int(rng.integers(1, w + 1)), int(rng.integers(1, h + 1))))
                    for w, h in rng.integers(2, 400, (25, 2)).tolist()]


def noise(rng, height: int, row_bytes: int) -> np.ndarray:
    """Random rows, or half the time smooth ramps with random edges."""
    pixels = rng.integers(0, 256, (height, row_bytes), dtype=np.uint8)
    if rng.random() < 0.5:
        ramp = np.add.outer(np.arange(height) * 3, np.arange(row_bytes) * 2) % 256
        pixels = np.where(pixels < 16, pixels, ramp).astype(np.uint8)
    return pixels


@pytest.mark.parametrize(("depth", "colour"), [kind for kind in KINDS if kind[1] in (0, 2) and kind[0] > 1])
def test_the_streamed_box_filter_is_within_1_level_of_pillow_s(tmp_path, depth, colour):
    rng = np.random.default_rng(100 + depth * 10 + colour)
    path = tmp_path / "f.png"
    identical = total = 0
    for (width, height), size in box_sizes(rng):
        row_bytes = (width * depth * CHANNELS[colour] + 7) // 8
        path.write_bytes(png_with_every_filter(noise(rng, height, row_bytes), width, depth, colour, rng))
        with Image.open(path) as whole:
            assert whole.mode in BOX_MODES
            expected = np.asarray(whole.resize(size, Image.Resampling.BOX), dtype=np.int32)
        with PngRows.open(path) as rows:
            got = box_streamed(rows, size, int(rng.integers(1, 40)))
        got = got[..., 0] if colour == 0 else got
        assert got.shape == expected.shape, (width, height, size)
        difference = np.abs(got - expected)
        assert difference.max() <= 1, (width, height, size)  # 16-bit: 1 of 65,535
        identical += int((difference == 0).sum())
        total += difference.size
    assert identical >= 0.7 * total, identical / total  # most pixels are Pillow's exactly


def alpha_bound(alpha: np.ndarray) -> np.ndarray:
    """How far the colour of a pixel of mean alpha `alpha` may be from Pillow's: Pillow's rounded means
    of premultiplied colour P and alpha A may each be 1 from the exact ones, and the colour is
    255 P / A, so it may move by 255 (A + P) / (A (A - 1)) <= 510 / (A - 1), plus 1 for truncating;
    at A <= 1 the colour is anything."""
    alpha = alpha.astype(np.float64)
    return np.where(alpha > 1, 1 + 510 / np.maximum(alpha - 1, 1), 255)


@pytest.mark.parametrize(("depth", "colour"), [(8, 4), (8, 6)])
def test_the_streamed_box_filter_averages_colour_weighted_by_alpha_as_pillow_does(tmp_path, depth, colour):
    rng = np.random.default_rng(200 + colour)
    path = tmp_path / "f.png"
    identical = total = opaque = opaque_identical = 0
    for (width, height), size in box_sizes(rng):
        pixels = noise(rng, height, width * CHANNELS[colour]).reshape(height, width, CHANNELS[colour])
        if rng.random() < 0.5:  # opaque and clear patches among the noise, as in real pictures
            pixels[..., -1] = np.where(rng.random((height, width)) < 0.5, 255 * (rng.random() < 0.7), pixels[..., -1])
        path.write_bytes(png_with_every_filter(pixels.reshape(height, -1), width, depth, colour, rng))
        with Image.open(path) as whole:
            assert whole.mode in ("LA", "RGBA")
            expected = np.asarray(whole.resize(size, Image.Resampling.BOX), dtype=np.int32)
        with PngRows.open(path) as rows:
            got = box_streamed(rows, size, int(rng.integers(1, 40))).astype(np.int32)
        assert got.shape == expected.shape, (width, height, size)
        assert np.abs(got[..., -1] - expected[..., -1]).max() <= 1, (width, height, size)  # alpha: a plain mean
        difference = np.abs(got[..., :-1] - expected[..., :-1]).max(axis=-1)
        bound = alpha_bound(expected[..., -1])
        assert (difference <= bound).all(), (width, height, size, difference[difference > bound][:5])
        identical += int((difference == 0).sum())
        total += difference.size
        full = expected[..., -1] == 255
        opaque += int(full.sum())
        opaque_identical += int((difference[full] == 0).sum())
        assert difference[full].max(initial=0) <= 1  # opaque: as RGB
    assert identical >= 0.7 * total, identical / total
    assert opaque_identical >= 0.7 * opaque, opaque_identical / opaque


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
        ("grey.jpg", Image.fromarray(ramp), {}),
        ("cmyk.jpg", Image.fromarray(np.dstack([colours, ramp])).convert("CMYK"), {}),
        ("rgb.bmp", Image.fromarray(colours), {}),
        ("rgba.bmp", Image.fromarray(np.dstack([colours, ramp])), {}),
        ("grey.bmp", Image.fromarray(ramp), {}),
        ("rle.bmp", Image.fromarray(ramp), {}),  # run-length encoded below
        ("rgba.tif", Image.fromarray(np.dstack([colours, ramp])), {"compression": "tiff_lzw"}),
        ("deep.tif", Image.fromarray(ramp.astype(np.uint16) * 251), {}),
        ("float.tif", Image.fromarray(ramp.astype(np.float32) / 7), {}),
        ("adam7.png", Image.fromarray(colours), {}),  # interlaced below
        ("raw.tif", Image.fromarray(colours), {}),  # one uncompressed strip
        ("zip.tif", Image.fromarray(colours), {"compression": "tiff_adobe_deflate"}),  # strips of 64 KiB
        ("tiled.tif", np.dstack([colours, ramp]),
         {"tile": (32, 48), "compression": "zlib", "extrasamples": ["unassalpha"]}),
        ("tiled16.tif", ramp.astype(np.uint16) * 251, {"tile": (48, 32)}),
        ("lzw.tif", Image.fromarray(ramp), {"compression": "tiff_lzw"}),
    ]


def save(picture: Image.Image | np.ndarray, path, options: dict) -> None:
    """Save one of `originals`: an array by tifffile, an interlaced PNG by `adam7`, others by Pillow."""
    if isinstance(picture, np.ndarray):
        tifffile.imwrite(path, picture, photometric="rgb" if picture.ndim == 3 else "minisblack", **options)
    elif path.name == "adam7.png":
        path.write_bytes(adam7(picture))
    elif path.name == "rle.bmp":
        path.write_bytes(rle8(picture))
    else:
        picture.save(path, **options)


def rle8(picture: Image.Image) -> bytes:
    """A run-length encoded (RLE8) BMP of a greyscale picture: a run of one pixel for each, bottom-up."""
    pixels = np.asarray(picture)
    rows = [bytes(np.dstack([np.ones_like(row), row]).ravel()) + b"\x00\x00" for row in pixels[::-1]]
    data = b"".join(rows)[:-2] + b"\x00\x01"
    palette = bytes(np.repeat(np.arange(256, dtype=np.uint8), 4))
    info = struct.pack("<IiiHHIIiiII", 40, picture.width, picture.height, 1, 8, 1, len(data), 2835, 2835, 256, 0)
    head = 14 + len(info) + len(palette)
    return b"BM" + struct.pack("<IHHI", head + len(data), 0, 0, head) + info + palette + data


def adam7(picture: Image.Image) -> bytes:
    """An interlaced (Adam7) PNG of an RGB picture, each pass's rows unfiltered."""
    pixels = np.asarray(picture)
    lines = b""
    for top, left, down, across in ((0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2),
                                    (0, 1, 2, 2), (1, 0, 2, 1)):
        part = pixels[top::down, left::across]
        if part.size:
            lines += b"".join(b"\x00" + row.tobytes() for row in part)
    header = struct.pack(">IIBBBBB", picture.width, picture.height, 8, 2, 0, 0, 1)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(lines))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("reduced", [False, True])
def test_an_overlay_made_band_by_band_has_the_pixels_of_one_drawn_at_once(tmp_path, monkeypatch, reduced):
    angles = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    style = Style.of(ExportOptions(visualization_options={"show_numbers": True, "stroke_width": 3,
                                                          "font_size": 12}).visualization_options)
    if reduced:  # drawn at about 0.37 of the original's side: nearest neighbour or a box filter
        monkeypatch.setattr(visualize, "MAX_OVERLAY_PIXELS", 211 * 157 // 7)
    for name, picture, options in originals(tmp_path):
        path = tmp_path / name
        save(picture, path, options)
        with Image.open(path) as opened:
            picture = opened.copy()
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
        if reduced and picture.mode in BOX_MODES:  # the banded box filter
            difference = np.abs(np.asarray(got, np.int16) - np.asarray(expected, np.int16))
            bound = 1
            if picture.mode in ("LA", "RGBA"):
                bound = alpha_bound(np.asarray(picture.getchannel("A").resize(got.size, Image.Resampling.BOX)))
            assert (difference.max(axis=-1) <= bound).all() and (difference == 0).mean() > 0.7, name
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


def loads_and_resizes(monkeypatch) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The sizes of the images Pillow decodes from a file, and of those it resizes, from now on."""
    loaded, resized, seen = [], [], set()

    def recording(load):
        def recording_load(self):
            if self.tile and id(self) not in seen:  # not yet decoded (TIFF's load calls ImageFile's)
                seen.add(id(self))
                loaded.append(self.size)
            return load(self)
        return recording_load

    def recording_resize(self, size, *args, **kwargs):
        resized.append(self.size)
        return resize(self, size, *args, **kwargs)

    resize = Image.Image.resize
    for kind in (ImageFile.ImageFile, TiffImagePlugin.TiffImageFile):
        monkeypatch.setattr(kind, "load", recording(kind.load))
    monkeypatch.setattr(Image.Image, "resize", recording_resize)
    return loaded, resized


def drawn(tmp_path, monkeypatch, name: str, drawn_at: str = "drawn at 79x59",
          ) -> tuple[list[tuple[int, int]], list[tuple[int, int]], Image.Image]:
    """Draw one of `originals` reduced, a band of a few rows at a time, noting what Pillow decodes and resizes."""
    picture, options = next((p, o) for n, p, o in originals(tmp_path) if n == name)
    path = tmp_path / name
    save(picture, path, options)
    with Image.open(path) as opened:
        picture = opened.copy()
    monkeypatch.setattr(visualize, "MAX_OVERLAY_PIXELS", 211 * 157 // 7)
    monkeypatch.setattr(visualize, "BAND_PIXELS", 900)
    cell = PolygonData("a", "external", ((10, 10), (150, 20), (60, 140)))
    loaded, resized = loads_and_resizes(monkeypatch)
    png, warnings = render(ImageData("i", name, picture.width, picture.height, path, (cell,)),
                           Style.of(ExportOptions().visualization_options))
    assert png is not None and drawn_at in warnings[-1], warnings
    assert Image.open(io.BytesIO(png)).size == tuple(map(int, drawn_at.split()[-1].split("x")))
    return loaded, resized, picture


@pytest.mark.parametrize("name", ["one.png", "grey.png", "rgb.png", "rgba.png", "la.png", "p8.png", "p4.png",
                                  "deep.png", "raw.tif", "zip.tif", "tiled.tif", "tiled16.tif", "deep.tif",
                                  "float.tif", "rgb.bmp", "rgba.bmp", "grey.bmp"])
def test_a_streamed_original_is_never_decoded_whole(tmp_path, monkeypatch, name):
    loaded, resized, picture = drawn(tmp_path, monkeypatch, name)
    assert loaded or not name.endswith(".png"), "nothing decoded"  # PNG strips by Pillow, others read as rows
    assert max((height for _, height in loaded), default=0) < picture.height // 10, loaded  # a few rows
    assert max((height for _, height in resized), default=0) < picture.height // 10, resized


@pytest.mark.parametrize("name", ["photo.jpg", "grey.jpg", "cmyk.jpg"])
def test_a_jpeg_is_decoded_at_the_smallest_dct_scale_still_at_least_the_overlay(tmp_path, monkeypatch, name):
    loaded, resized, _ = drawn(tmp_path, monkeypatch, name)
    assert loaded == [(106, 79)]  # 211 x 157 at 1/2, not at 1/4 (53 x 40, under 79 x 59)
    assert resized == []  # reduced to 79 x 59 by the banded box filter


@pytest.mark.parametrize("name", ["adam7.png", "rgba.tif", "lzw.tif", "rle.bmp"])
def test_an_original_decoded_whole_is_reduced_in_bands_not_by_a_whole_resize(tmp_path, monkeypatch, name):
    loaded, resized, picture = drawn(tmp_path, monkeypatch, name)
    assert loaded == [picture.size]  # once, and nothing the size of the overlay made from it
    assert max((height for _, height in resized), default=0) < picture.height // 10, resized


def test_a_jpeg_that_would_decode_past_the_budget_is_drawn_at_a_smaller_dct_scale(tmp_path, monkeypatch):
    monkeypatch.setattr(visualize, "MAX_DECODED_BYTES", 4 * 60 * 45)  # 1/2 scale (106 x 79) holds more
    loaded, resized, _ = drawn(tmp_path, monkeypatch, "photo.jpg", "drawn at 53x40")
    assert loaded == [(53, 40)] and resized == []  # 1/4 scale, drawn as decoded


def test_what_drawing_an_original_holds_decoded_at_once_is_nothing_for_a_streamed_one(tmp_path):
    """`held_whole`, which the upload's limit reads, follows `_source_bands`: 0 for what it streams,
    the decoded pixels for what it decodes whole, a JPEG's at the DCT scale it is decoded at."""
    picture = Image.fromarray(np.random.default_rng(3).integers(0, 256, (300, 400, 3), dtype=np.uint8))

    def encoded(kind: str, **options) -> bytes:
        buffer = io.BytesIO()
        picture.save(buffer, kind, **options)
        return buffer.getvalue()

    whole = 4 * picture.width * picture.height  # RGB, as Pillow holds it
    assert visualize.held_whole(encoded("PNG")) == 0
    assert visualize.held_whole(encoded("PNG", optimize=True)) == 0
    assert visualize.held_whole(encoded("TIFF", compression="tiff_adobe_deflate")) == 0
    assert visualize.held_whole(encoded("TIFF")) == 0
    assert visualize.held_whole(encoded("BMP")) == 0
    assert visualize.held_whole(adam7(picture)) == whole
    assert visualize.held_whole(encoded("TIFF", compression="tiff_lzw")) == whole  # tifffile needs imagecodecs
    assert visualize.held_whole(encoded("JPEG")) == whole  # under 4096²: at its own size
    for mode, held in (("L", 4500 * 4100), ("RGB", 4 * 2250 * 2050)):  # at 1/2 for an overlay of 4096² or less,
        buffer = io.BytesIO()                                           # at 1/4 where 1/2 holds too much
        Image.new(mode, (9000, 8200), 90).save(buffer, "JPEG")
        assert visualize.held_whole(buffer.getvalue()) == held, mode
