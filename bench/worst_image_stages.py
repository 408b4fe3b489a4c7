"""What one image at the API's limits costs each per-image step of an export, each in a fresh process.

The image is the one `export_memory.py --worst-image` adds (a 10,000 × 10,000
1-bit PNG with nine small cells and a large cell with a hole, its box 0.36 of
the image), or with `--kind K` another kind of original at the cap that binds for
it (`export_memory.WORST_KINDS`: 8-bit greyscale 10,000², 16-bit greyscale
7,240², RGB, RGBA and LA 5,120²; as PNG, JPEG, TIFF or BMP), each with the same
cells scaled to it. For each step (the overlay, the label mask, the
COCO annotations) a child process loads the image, checks its polygons, notes
its peak resident set (VmHWM), runs the step once and prints how much the peak
grew and the seconds it took. Nothing is asserted.

Run: ``.venv/bin/python bench/worst_image_stages.py [--steps overlay masks coco]
[--kind one-bit|grey|rgb|rgba|la|grey16|jpeg|jpeg-grey|tiff|tiff16|tiff-zip|bmp]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _exports import load_project, machine  # noqa: E402
from export_memory import WORST_SIDES, add_worst_image, peak_mb  # noqa: E402

STEPS = ("overlay", "masks", "coco")


def build(folder: Path, kind: str) -> Path:
    """The manifest of a project of the one image."""
    manifest = folder / "project.jsonl"
    manifest.write_text("")
    add_worst_image(manifest, kind)
    return manifest


def child(manifest: Path, step: str) -> None:
    """Runs in the measured process: one step over the image, one line of JSON."""
    warnings.simplefilter("ignore")  # Pillow's decompression-bomb warning at the pixel cap
    from exportd.domain.options import ExportOptions
    from exportd.export import coco, masks, visualize
    from exportd.export.geometry import check_project
    from exportd.export.workers import Workers

    project, _ = check_project(load_project(manifest), Workers(lambda: None))
    image = project.images[-1]
    style = visualize.Style.of(ExportOptions().visualization_options)
    before = peak_mb()
    began = time.perf_counter()
    if step == "overlay":
        data, _ = visualize.render(image, style)
        size = len(data or b"")
    elif step == "masks":
        data, _ = masks.image_mask(image)
        size = len(data)
    else:
        annotations, _ = coco.image_annotations((1, image), {"cell": 1})
        size = sum(map(len, annotations))
    print(json.dumps({"grown_mb": peak_mb() - before, "seconds": time.perf_counter() - began, "bytes": size,
                      "size": [image.width, image.height]}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=tuple(WORST_SIDES), default="one-bit")
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=STEPS)
    parser.add_argument("--child", nargs=2, metavar=("MANIFEST", "STEP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), args.child[1])
        return 0
    print(f"worst_image_stages: {args.kind}; {machine()}")
    with tempfile.TemporaryDirectory(prefix="exportd-bench-") as folder:
        manifest = build(Path(folder), args.kind)
        for step in args.steps:
            command = [sys.executable, __file__, "--child", str(manifest), step]
            figures = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
            width, height = figures["size"]
            print(f"  {step:8s} {width} x {height}: peak RSS grew {figures['grown_mb']:6.1f} MB,"
                  f" {figures['seconds']:5.2f} s, {figures['bytes'] / 1e3:.0f} kB written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
