"""Originals only: `build_export` copying 500 images into a ZIP, against `zipfile` doing the same.

A synthetic project of 500 images (512 × 384 greyscale PNG, about 130 kB each,
48 distinct images cycled) is written to a temporary folder first. Then, in
alternating rounds (5 each by default, after one warm-up of each):

* exportd: `build_export` with only `includeOriginalImages` (no overlays,
  annotations, metrics or documentation; `metadata.json` is always written),
  inline, with a job context that never stops;
* baseline: `zipfile.ZipFile(path, "w")` and `ZipFile.write(file, arcname,
  ZIP_STORED)` for the same files (exportd stores images uncompressed too).

Both write into the same temporary folder and read files the page cache
already holds. Printed: the median and best time of each, MB/s, and the ratio
of the medians (target ≤ 1.2×). Timings are never asserted.

Run: ``.venv/bin/python bench/export_originals.py [--images 500] [--rounds 5]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _exports import QuietContext, build_project, load_project, machine, verdict  # noqa: E402

from exportd.domain.options import ExportOptions  # noqa: E402
from exportd.export.pipeline import build_export  # noqa: E402

TARGET = 1.2
ORIGINALS_ONLY = ExportOptions(
    include_original_images=True, include_visualizations=False, include_documentation=False,
    annotation_formats=[], metrics_formats=[],
)


def run_exportd(project, out: Path, round_: int) -> float:
    began = time.perf_counter()
    result = build_export(project, ORIGINALS_ONLY, out, job_id=f"r{round_}", generated_at=datetime.now(UTC),
                          ctx=QuietContext())
    seconds = time.perf_counter() - began
    result.path.unlink()
    return seconds


def run_zipfile(project, out: Path, round_: int) -> float:
    target = out / f"baseline_{round_}.zip"
    began = time.perf_counter()
    with zipfile.ZipFile(target, "w", allowZip64=True) as archive:
        for image in project.images:
            archive.write(image.path, f"images/{image.name}", compress_type=zipfile.ZIP_STORED)
    seconds = time.perf_counter() - began
    target.unlink()
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"export_originals: {args.images} images, {args.rounds} rounds each; {machine()}")
    with tempfile.TemporaryDirectory(prefix="exportd-bench-") as folder:
        root = Path(folder)
        project = load_project(build_project(root / "project", args.images, 512, 384))
        size = sum(image.path.stat().st_size for image in project.images)
        out = root / "out"
        out.mkdir()
        run_exportd(project, out, -1)
        run_zipfile(project, out, -1)
        exportd, baseline = [], []
        for round_ in range(args.rounds):
            exportd.append(run_exportd(project, out, round_))
            baseline.append(run_zipfile(project, out, round_))
    for label, times in (("exportd build_export", exportd), ("zipfile baseline", baseline)):
        median = statistics.median(times)
        print(f"  {label:<22} median {median * 1000:7.1f} ms  best {min(times) * 1000:7.1f} ms"
              f"  {size / median / 1e6:6.0f} MB/s  ({size / 1e6:.0f} MB)")
    ratio = statistics.median(exportd) / statistics.median(baseline)
    print(f"  ratio exportd / zipfile (medians): {ratio:.2f}x  (target <= {TARGET}x: "
          f"{verdict(ratio, TARGET, higher_is_better=False)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
