"""The worst image the API accepts costs a bounded amount of memory to export: the overlay's one-byte
layer at its capped size and a band of rows, not the original's 100 MB of decoded pixels nor the
overlay as RGB, measured in a fresh process, for a 1-bit original (reduced by nearest neighbour)
and an RGB and an RGBA one (reduced by the streamed box filter), and a JPEG (decoded at 1/2 scale);
a TIFF that cannot be streamed costs its decoded pixels on top, and no full-size copy."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
from PIL import Image, ImageDraw

from exportd.domain.limits import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, decoded_bytes
from exportd.export.visualize import MAX_OVERLAY_PIXELS

SIDE = 10_000
CHILD = textwrap.dedent("""
    import json, sys
    from datetime import UTC, datetime
    from pathlib import Path
    from exportd.domain.options import ExportOptions
    from exportd.export.pipeline import build_export
    from exportd.export.source import ImageData, PolygonData, ProjectSnapshot

    class Quiet:
        def raise_if_cancelled(self): pass
        def advance(self, *args, **kwargs): pass
        def warn(self, message): print(message, file=sys.stderr)
        def item_done(self): pass

    path, out, side = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    cells = tuple(PolygonData(f"c{n}", "external", ((x, 100.0), (x + 800, 100.0), (x + 400, 900.0)))
                  for n, x in enumerate(range(100, side - 1000, 1000)))
    project = ProjectSnapshot("p", "P", images=(ImageData("i", path.name, side, side, path, cells),))
    options = ExportOptions(include_original_images=True, include_visualizations=True, include_documentation=True,
                            annotation_formats=["yolo", "json"], metrics_formats=["csv", "excel"])
    def peak():  # this process's own high-water mark (ru_maxrss would carry the parent's over exec)
        line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024

    # a small export first, so that the modules and caches every export loads are not counted
    from PIL import Image
    small = out / "small.png"
    Image.new("RGB", (64, 64), (40, 40, 40)).save(small)
    (out / "warm").mkdir()
    warm = ProjectSnapshot("w", "W", images=(ImageData("w", "small.png", 64, 64, small, (
        PolygonData("w1", "external", ((8.0, 8.0), (40.0, 8.0), (24.0, 40.0))),)),))
    build_export(warm, options, out / "warm", job_id="w", generated_at=datetime.now(UTC), ctx=Quiet())
    before = peak()
    result = build_export(project, options, out, job_id="m", generated_at=datetime.now(UTC), ctx=Quiet())
    after = peak()
    print(json.dumps({"before": before, "after": after, "warnings": result.warnings}))
""")


RGB_SIDE = 5120  #: 100 MiB decoded (Pillow keeps RGB in four bytes a pixel): the byte cap


def test_a_1_bit_image_at_the_pixel_cap_exports_within_the_capped_overlay_s_layer(tmp_path):
    assert SIDE * SIDE <= MAX_IMAGE_PIXELS and decoded_bytes("1", (SIDE, SIDE)) <= MAX_IMAGE_BYTES  # accepted
    path = tmp_path / "huge.png"
    picture = Image.new("1", (SIDE, SIDE), 0)
    ImageDraw.Draw(picture).ellipse((1000, 1000, 9000, 9000), fill=1)
    picture.save(path, "PNG")
    del picture
    exports_within_the_capped_overlay_s_layer(tmp_path, path, SIDE)


def test_an_rgb_image_at_the_byte_cap_exports_within_the_capped_overlay_s_layer(tmp_path):
    side = RGB_SIDE
    assert side * side <= MAX_IMAGE_PIXELS and decoded_bytes("RGB", (side, side)) == MAX_IMAGE_BYTES  # accepted
    grey = Image.new("L", (side, side), 40)
    ImageDraw.Draw(grey).ellipse((side // 10, side // 10, side * 9 // 10, side * 9 // 10), fill=200)
    pixels = np.asarray(grey)
    path = tmp_path / "huge.png"
    Image.fromarray(np.dstack([pixels, pixels[::-1], pixels[:, ::-1]])).save(path, "PNG")
    del grey, pixels
    exports_within_the_capped_overlay_s_layer(tmp_path, path, side)


def test_an_rgba_image_at_the_byte_cap_exports_within_the_capped_overlay_s_layer(tmp_path):
    side = RGB_SIDE
    assert decoded_bytes("RGBA", (side, side)) == MAX_IMAGE_BYTES  # accepted
    grey = Image.new("L", (side, side), 40)
    ImageDraw.Draw(grey).ellipse((side // 10, side // 10, side * 9 // 10, side * 9 // 10), fill=200)
    pixels = np.asarray(grey)
    path = tmp_path / "huge.png"
    Image.fromarray(np.dstack([pixels, pixels[::-1], pixels[:, ::-1], np.ascontiguousarray(pixels.T)])).save(path)
    del grey, pixels
    exports_within_the_capped_overlay_s_layer(tmp_path, path, side)


def test_a_jpeg_at_the_byte_cap_is_drawn_at_half_scale_within_the_capped_overlay_s_layer(tmp_path):
    """Decoded at the DCT scale for 4096², it would hold 100 MiB: it is decoded and drawn at 1/2."""
    path = tmp_path / "huge.jpg"
    Image.fromarray(colour_picture(RGB_SIDE)).save(path, quality=90)
    exports_within_the_capped_overlay_s_layer(tmp_path, path, RGB_SIDE, drawn_at="2560x2560")


def test_a_tiff_it_cannot_stream_at_the_byte_cap_exports_within_its_decoded_pixels_and_the_layer(tmp_path):
    """LZW without imagecodecs: decoded whole, but reduced in bands, with no full-size copy."""
    path = tmp_path / "huge.tif"
    Image.fromarray(colour_picture(RGB_SIDE)).save(path, compression="tiff_lzw")
    exports_within_the_capped_overlay_s_layer(tmp_path, path, RGB_SIDE, decoded=MAX_IMAGE_BYTES)


def colour_picture(side: int) -> np.ndarray:
    """An ellipse on a plain ground, turned three ways in the three channels."""
    grey = Image.new("L", (side, side), 40)
    ImageDraw.Draw(grey).ellipse((side // 10, side // 10, side * 9 // 10, side * 9 // 10), fill=200)
    pixels = np.asarray(grey)
    return np.dstack([pixels, pixels[::-1], pixels[:, ::-1]])


def exports_within_the_capped_overlay_s_layer(tmp_path, path, side: int, decoded: int = 0,
                                              drawn_at: str = "4096x4096") -> None:
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), str(out), str(side)],
                          capture_output=True, text=True, timeout=300, check=True)
    figures = json.loads(done.stdout)
    # the layer of inks, one byte a pixel; the slack holds a band, Python objects and the compressed PNG
    bound = decoded + MAX_OVERLAY_PIXELS + 32 * 1_048_576
    grown = figures["after"] - figures["before"]
    assert grown <= bound, f"the export grew the process by {grown / 1e6:.0f} MB (bound {bound / 1e6:.0f} MB)"
    assert any(f"visualization drawn at {drawn_at}" in w for w in figures["warnings"]), figures["warnings"]
