"""Peak memory of exporting a 10,000-image project of small images, measured in a fresh process.

The project (64 × 64 greyscale PNG, 4-10 cells of 24-64 points each, 48
distinct images cycled, about 84,000 polygons) is written to a temporary
folder first. A child process then loads the snapshot from the manifest, line
by line, notes its peak resident set (VmHWM), and runs one full export:
originals, overlays, documentation, COCO + YOLO + JSON + label-mask annotations
and Excel + CSV + JSON metrics, inline (or with `--workers N`, a process pool, whose
children's peak is reported separately). Printed: the peak after loading the
snapshot, the peak over the whole export (target < 300 MB), the ZIP's size and
the time. Timings and sizes are never asserted.

With ``--worst-image``, one 10,000 × 10,000 1-bit PNG (12 KB as a file, exactly
at the pixel cap) joins the project: the worst image the API accepts, whose
overlay is drawn at 4096 × 4096, with nine small cells and one large cell with a
hole (its box 0.36 of the image): the cell that COCO writes as an RLE mask and
that the label mask, a 16-bit array of the whole image, paints. With
``--worst-kind K`` it is another kind of original (`WORST_KINDS`), with the same
cells scaled, each at the cap that binds for it: 10,000² for 8-bit greyscale
(PNG, JPEG), 7,240² for 16-bit greyscale (PNG, TIFF; 2 bytes a pixel decoded),
5,120² for RGB, RGBA and LA (PNG, JPEG, TIFF, BMP; 4 bytes a pixel decoded). TIFFs
are LZW-compressed, but `tiff-zip` deflate-compressed. An LZW TIFF is decoded
whole (tifffile reads LZW strips only with imagecodecs), so the API accepts it up
to 64 MiB decoded (`held_whole`): `tiff` is 4,096² RGB and `tiff16` 5,792² 16-bit.

Run: ``.venv/bin/python bench/export_memory.py [--images 10000] [--workers 0] [--worst-image]
[--worst-kind one-bit|grey|rgb|rgba|la|grey16|jpeg|jpeg-grey|tiff|tiff16|tiff-zip|bmp]``
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _exports import QuietContext, build_project, load_project, machine, verdict  # noqa: E402

TARGET_MB = 300


def peak_mb() -> float:
    """This process's peak resident set so far (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(manifest: Path, out: Path, workers: int) -> None:
    """Runs in the measured process: load, export, print one line of JSON."""
    from exportd.domain.options import ExportOptions
    from exportd.export.pipeline import build_export

    began = time.perf_counter()
    project = load_project(manifest)
    loaded = peak_mb()
    options = ExportOptions(
        include_original_images=True, include_visualizations=True, include_documentation=True,
        annotation_formats=["coco", "yolo", "json", "masks"], metrics_formats=["excel", "csv", "json"],
    )
    pool = ProcessPoolExecutor(workers) if workers else None
    try:
        exported = time.perf_counter()
        result = build_export(project, options, out, job_id="memory", generated_at=datetime.now(UTC),
                              ctx=QuietContext(), pool=pool)
        done = time.perf_counter()
    finally:
        if pool is not None:
            pool.shutdown()
    print(json.dumps({
        "loaded_mb": loaded, "peak_mb": peak_mb(), "load_s": exported - began, "export_s": done - exported,
        "zip_mb": result.size / 1e6, "workers_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "polygons": sum(len(image.polygons) for image in project.images),
    }))


#: each kind of worst image: (side, format, mode), at the pixel cap or the decoded-byte cap, whichever binds
WORST_KINDS = {
    "one-bit": (10_000, "PNG", "1"), "grey": (10_000, "PNG", "L"), "rgb": (5120, "PNG", "RGB"),
    "rgba": (5120, "PNG", "RGBA"), "la": (5120, "PNG", "LA"), "grey16": (7240, "PNG", "I;16"),
    "jpeg": (5120, "JPEG", "RGB"), "jpeg-grey": (10_000, "JPEG", "L"), "tiff": (4096, "TIFF", "RGB"),
    "tiff16": (5792, "TIFF", "I;16"), "tiff-zip": (5120, "TIFF", "RGB"), "bmp": (5120, "BMP", "RGB"),
}
#: how each format is saved: TIFF with LZW (tifffile needs imagecodecs to decode it a strip at a time), or
#: `tiff-zip` with deflate (which tifffile decodes on its own)
SAVE_OPTIONS = {"JPEG": {"quality": 90}, "TIFF": {"compression": "tiff_lzw"}}
WORST_SIDES = {kind: side for kind, (side, _, _) in WORST_KINDS.items()}
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "TIFF": "tif", "BMP": "bmp"}


def worst_picture(kind: str) -> tuple[object, str]:
    """The worst image of `kind` and its format: an ellipse on a plain ground; colour kinds carry the
    picture turned three ways in their channels, and RGBA and LA the picture transposed as alpha."""
    import numpy as np
    from PIL import Image, ImageDraw

    side, kind_format, mode = WORST_KINDS[kind]
    picture = Image.new("1" if mode == "1" else "L", (side, side), 0 if mode == "1" else 40)
    ImageDraw.Draw(picture).ellipse((side // 10, side // 10, side * 9 // 10, side * 9 // 10),
                                    fill=1 if mode == "1" else 200)
    if mode in ("1", "L"):
        return picture, kind_format
    grey = np.asarray(picture)
    del picture
    if mode == "I;16":
        return Image.fromarray(grey.astype(np.uint16) * 257), kind_format
    alpha = [np.ascontiguousarray(grey.T)] if mode in ("RGBA", "LA") else []
    channels = [grey] + alpha if mode == "LA" else [grey, grey[::-1], grey[:, ::-1]] + alpha
    return Image.fromarray(np.dstack(channels), mode), kind_format


def add_worst_image(manifest: Path, kind: str = "one-bit") -> None:
    """One more image, the costliest of its kind to draw that the API accepts (`WORST_KINDS`), with
    nine small cells and one large cell with a hole."""
    from PIL import Image

    from exportd.domain.limits import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, decoded_bytes

    side = WORST_SIDES[kind]
    picture, kind_format = worst_picture(kind)
    name = f"worst.{EXTENSIONS[kind_format]}"
    options = {"compression": "tiff_adobe_deflate"} if kind == "tiff-zip" else SAVE_OPTIONS.get(kind_format, {})
    picture.save(manifest.parent / name, kind_format, **options)
    del picture
    with Image.open(manifest.parent / name) as saved:  # as the API checks it
        assert saved.format == kind_format and saved.mode == WORST_KINDS[kind][2], (saved.format, saved.mode)
        assert side * side <= MAX_IMAGE_PIXELS and decoded_bytes(saved.mode, saved.size) <= MAX_IMAGE_BYTES
    cells = [{"id": f"w{n}", "type": "external", "parentId": None, "className": "cell",
              "points": [[x, 100.0], [x + 800, 100.0], [x + 400, 900.0]]}
             for n, x in enumerate(range(100, side - 1000, 1000))]
    angles = [2 * math.pi * k / 400 for k in range(400)]

    def ring(radius: float) -> list[list[float]]:
        return [[side / 2 + radius * math.cos(a), side / 2 + radius * math.sin(a)] for a in angles]

    cells += [{"id": "big", "type": "external", "parentId": None, "className": "cell", "points": ring(side * 0.3)},
              {"id": "hole", "type": "internal", "parentId": "big", "className": "cell", "points": ring(side * 0.15)}]
    line = {"id": "worst", "name": name, "width": side, "height": side, "polygons": cells}
    with open(manifest, "a") as lines:
        lines.write(json.dumps(line) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--worst-image", action="store_true",
                        help="add the worst image the API accepts: 10,000 x 10,000 1-bit, at the pixel cap")
    parser.add_argument("--worst-kind", choices=tuple(WORST_SIDES), default="one-bit",
                        help="the worst image's kind (WORST_KINDS): its format, mode and side at the API's cap")
    parser.add_argument("--child", nargs=2, metavar=("MANIFEST", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]), args.workers)
        return 0
    print(f"export_memory: {args.images} images of 64 x 64, all formats and overlays, "
          f"{'inline' if not args.workers else f'{args.workers} workers'}; {machine()}")
    with tempfile.TemporaryDirectory(prefix="exportd-bench-") as folder:
        root = Path(folder)
        began = time.perf_counter()
        manifest = build_project(root / "project", args.images, 64, 64)
        if args.worst_image:
            side, kind_format, mode = WORST_KINDS[args.worst_kind]
            add_worst_image(manifest, args.worst_kind)
            print(f"  with one {side:,} x {side:,} {mode} {kind_format} ({args.worst_kind}, at the pixel or the byte"
                  " cap) among them")
        print(f"  project written in {time.perf_counter() - began:.1f} s")
        out = root / "out"
        out.mkdir()
        command = [sys.executable, __file__, "--workers", str(args.workers), "--child", str(manifest), str(out)]
        figures = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    print(f"  {figures['polygons']} polygons; snapshot loaded in {figures['load_s']:.1f} s,"
          f" peak RSS then {figures['loaded_mb']:.0f} MB")
    print(f"  export: {figures['export_s']:.1f} s ({args.images / figures['export_s']:.0f} images/s),"
          f" ZIP {figures['zip_mb']:.0f} MB")
    if args.workers:
        print(f"  largest worker process peak RSS: {figures['workers_peak_mb']:.0f} MB")
    print(f"  peak RSS of the exporting process: {figures['peak_mb']:.0f} MB  (target < {TARGET_MB} MB: "
          f"{verdict(figures['peak_mb'], TARGET_MB, higher_is_better=False)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
