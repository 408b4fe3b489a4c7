"""What the worst polygons the API accepts cost an export, each measured in a fresh process.

1. One polygon at the point limit (`MAX_POINTS_PER_POLYGON`) in three shapes: a
   circle (valid), the pattern `[k % 500, 7k % 500]` (self-intersecting), and
   uniformly random points (a tangle, crossings growing with the square of the
   points). For each: the export's check (`geometry.defect`: GEOS's validity
   test) and, for comparison, `shapely.make_valid` (the repair exportd no
   longer runs), given at most `--repair-seconds` before it is abandoned.
2. One image at the image limit (`MAX_POINTS_PER_IMAGE`, as polygons at the
   point limit) exported with every format and the overlays, once with tangles
   and once with circles (the baseline): seconds and peak RSS of the process.

Timings are printed, never asserted; other work on the machine inflates them.

Run: ``.venv/bin/python bench/geometry_limits.py [--repair-seconds 20]``
"""

from __future__ import annotations

import argparse
import io
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _exports import QuietContext, machine  # noqa: E402

SHAPES = ("circle", "pattern", "tangle")


def points(shape: str, count: int, size: float = 500.0, seed: int = 1) -> np.ndarray:
    if shape == "circle":
        angles = np.linspace(0, 2 * math.pi, count, endpoint=False)
        return np.c_[size / 2 + size * 0.4 * np.cos(angles), size / 2 + size * 0.4 * np.sin(angles)]
    if shape == "pattern":
        k = np.arange(count)
        return np.c_[k % 500, (7 * k) % 500].astype(float) * size / 500
    return np.random.default_rng(seed).uniform(0, size, (count, 2))


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_check(shape: str) -> dict:
    from exportd.domain.limits import MAX_POINTS_PER_POLYGON
    from exportd.export.geometry import defect

    outline = points(shape, MAX_POINTS_PER_POLYGON)
    began = time.perf_counter()
    found = defect(outline, 500, 500)
    return {"seconds": time.perf_counter() - began, "defect": found, "peak_mb": peak_mb()}


def measure_repair(shape: str) -> dict:
    import shapely
    from shapely.geometry import Polygon

    from exportd.domain.limits import MAX_POINTS_PER_POLYGON

    outline = Polygon(points(shape, MAX_POINTS_PER_POLYGON))
    began = time.perf_counter()
    shapely.make_valid(outline)
    return {"seconds": time.perf_counter() - began, "peak_mb": peak_mb()}


def measure_export(shape: str) -> dict:
    from PIL import Image

    from exportd.domain.limits import MAX_POINTS_PER_IMAGE, MAX_POINTS_PER_POLYGON
    from exportd.domain.options import ExportOptions
    from exportd.export.pipeline import build_export
    from exportd.export.source import ImageData, PolygonData, ProjectSnapshot

    with tempfile.TemporaryDirectory(prefix="exportd-bench-") as folder:
        root = Path(folder)
        path = root / "image.png"
        buffer = io.BytesIO()
        Image.new("L", (500, 500), 90).save(buffer, "PNG")
        path.write_bytes(buffer.getvalue())
        count = MAX_POINTS_PER_IMAGE // MAX_POINTS_PER_POLYGON
        polygons = tuple(PolygonData(f"p{n}", "external", points(shape, MAX_POINTS_PER_POLYGON, seed=n))
                         for n in range(count))
        project = ProjectSnapshot("bench", "Bench", images=(ImageData("i", "image.png", 500, 500, path, polygons),))
        options = ExportOptions(include_original_images=True, include_visualizations=True,
                                include_documentation=True, annotation_formats=["coco", "yolo", "json"],
                                metrics_formats=["excel", "csv", "json"])
        out = root / "out"
        out.mkdir()
        before = peak_mb()
        began = time.perf_counter()
        build_export(project, options, out, job_id="limits", generated_at=datetime.now(UTC), ctx=QuietContext())
        return {"seconds": time.perf_counter() - began, "polygons": count, "peak_mb": peak_mb(),
                "before_mb": before}


def in_child(what: str, shape: str, timeout: float | None = None) -> dict | None:
    command = [sys.executable, __file__, "--child", what, shape]
    try:
        done = subprocess.run(command, check=True, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    return json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repair-seconds", type=float, default=20.0)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        what, shape = args.child
        print(json.dumps({"check": measure_check, "repair": measure_repair, "export": measure_export}[what](shape)))
        return 0
    from exportd.domain.limits import MAX_POINTS_PER_IMAGE, MAX_POINTS_PER_POLYGON

    print(f"geometry_limits: {MAX_POINTS_PER_POLYGON} points per polygon, {MAX_POINTS_PER_IMAGE} per image; "
          f"{machine()}")
    for shape in SHAPES:
        check = in_child("check", shape)
        repair = in_child("repair", shape, timeout=args.repair_seconds)
        repaired = (f"{repair['seconds'] * 1000:.0f} ms, peak RSS {repair['peak_mb']:.0f} MB" if repair
                    else f"not done after {args.repair_seconds:.0f} s (abandoned)")
        print(f"  one {shape} polygon: check {check['seconds'] * 1000:.1f} ms ({check['defect'] or 'valid'}); "
              f"make_valid {repaired}")
    figures = {shape: in_child("export", shape) for shape in ("circle", "tangle")}
    base, worst = figures["circle"], figures["tangle"]
    print(f"  one image of {worst['polygons']} polygons at the point limit, every format and the overlays:")
    print(f"    circles (baseline): {base['seconds']:.2f} s, peak RSS {base['peak_mb']:.0f} MB")
    print(f"    tangles:            {worst['seconds']:.2f} s, peak RSS {worst['peak_mb']:.0f} MB "
          f"({worst['seconds'] / base['seconds']:.2f}x the baseline's time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
