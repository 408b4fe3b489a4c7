"""A cell with holes on the largest image the API accepts costs the COCO and mask writers a band of
rows and the cell's mask as bits, not the image nor the cell's box as bytes: no label array of the
whole image, no scanline temporaries of it; each writer is measured in a fresh process of its own."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from exportd.domain.limits import MAX_IMAGE_PIXELS

SIDE = 10_000
RADIUS = 0.3  #: of the large cell, as a fraction of the side: its box is 0.36 of the image
SLACK = 24 * 1_048_576  #: Python objects, the TIFF's compressed bytes, a band's scanline temporaries
CHILD = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import numpy as np
    from exportd.export.source import ImageData, PolygonData

    side, writer, RADIUS = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    angles = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    def ring(cx, cy, r):
        return tuple((float(cx + r * np.cos(a)), float(cy + r * np.sin(a))) for a in angles)
    polygons = (PolygonData("cell", "external", ring(side / 2, side / 2, side * RADIUS)),
                PolygonData("hole", "internal", ring(side / 2, side / 2, side * RADIUS / 2), parent_id="cell"),
                PolygonData("small", "external", ring(side * 0.05, side * 0.05, 100)),
                PolygonData("dot", "internal", ring(side * 0.05, side * 0.05, 20), parent_id="small"))
    image = ImageData("i", "huge.png", side, side, Path("huge.png"), polygons)

    def peak():  # this process's own high-water mark
        line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024

    if writer == "coco":
        from exportd.export.coco import image_annotations
        before = peak()
        annotations, warnings = image_annotations((1, image), {"cell": 1})
        assert len(annotations) == 2 and all('"counts"' in a for a in annotations), annotations
    else:
        from exportd.export.masks import image_mask
        before = peak()
        data, warnings = image_mask(image)
        assert data[:4] in (b"II*\\x00", b"MM\\x00*"), data[:4]
    print(json.dumps({"before": before, "after": peak(), "warnings": warnings}))
""")


def grown_by(writer: str) -> int:
    done = subprocess.run([sys.executable, "-c", CHILD, str(SIDE), writer, str(RADIUS)],
                          capture_output=True, text=True, timeout=300, check=True)
    figures = json.loads(done.stdout)
    assert figures["warnings"] == [], figures["warnings"]
    return figures["after"] - figures["before"]


@pytest.mark.parametrize("writer", ["coco", "masks"])
def test_a_holed_cell_on_an_image_at_the_pixel_cap_costs_a_band_not_its_box_nor_the_image(writer):
    """COCO keeps the cell's mask as bits (4.5 MB here), the label mask paints a band of rows at a time:
    neither holds the box as bytes (36 MB) nor the image's 16-bit labels (200 MB)."""
    assert SIDE * SIDE <= MAX_IMAGE_PIXELS  # the API accepts it
    box = (2 * RADIUS * SIDE + 1) ** 2  # the large cell's pixels
    bound = box / 8 + SLACK
    grown = grown_by(writer)
    assert grown <= bound, f"{writer} grew the process by {grown / 1e6:.0f} MB (bound {bound / 1e6:.0f} MB)"
