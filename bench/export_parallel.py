"""Full export with a process pool: 2 workers against 1, and against no pool, in images/s.

A synthetic project of 500 images (512 × 384 greyscale PNG with 4-10 cells
each, 48 distinct images cycled) is written to a temporary folder. Each round
exports everything: originals, overlays, documentation, COCO + YOLO + JSON
annotations and Excel + CSV + JSON metrics, with `build_export` called
directly and a job context that never stops. Modes alternate within a round:

* inline: no pool, every part computed in the pipeline thread;
* 1 worker / 2 workers: a `ProcessPoolExecutor` created (and warmed up) before
  the clock starts, as the engine would own it.

Printed per mode: the median wall time over the rounds (2 by default), images/s,
the pipeline thread's CPU time, and the time spent in each stage of the median
run; then the speed-up of 2 workers over 1 (target ≥ 1.7×) and over inline.
Timings are never asserted.

Run: ``.venv/bin/python bench/export_parallel.py [--images 500] [--rounds 2]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _exports import QuietContext, build_project, load_project, machine, verdict  # noqa: E402

from exportd.domain.options import ExportOptions  # noqa: E402
from exportd.export.pipeline import build_export  # noqa: E402

TARGET = 1.7
EVERYTHING = ExportOptions(
    include_original_images=True, include_visualizations=True, include_documentation=True,
    annotation_formats=["coco", "yolo", "json"], metrics_formats=["excel", "csv", "json"],
)
MODES = {"inline": 0, "1 worker": 1, "2 workers": 2}


class StageClock(QuietContext):
    """Also notes when each stage last reported, to split the wall time by stage."""

    def __init__(self) -> None:
        super().__init__()
        self.last: dict[str, float] = {}

    def advance(self, stage: str, current: int, total: int, percent: float, message: str = "",
                item: str = "") -> None:
        self.last[stage] = time.perf_counter()


def run(project, out: Path, pool, round_: int) -> tuple[float, float, dict[str, float]]:
    ctx = StageClock()
    began, cpu = time.perf_counter(), time.thread_time()
    result = build_export(project, EVERYTHING, out, job_id=f"r{round_}", generated_at=datetime.now(UTC), ctx=ctx,
                          pool=pool)
    seconds, cpu = time.perf_counter() - began, time.thread_time() - cpu
    result.path.unlink()
    stages, previous = {}, began
    for stage, at in ctx.last.items():
        stages[stage], previous = at - previous, at
    return seconds, cpu, stages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(f"export_parallel: {args.images} images, all formats and overlays, {args.rounds} rounds; {machine()}")
    pools = {name: ProcessPoolExecutor(workers) if workers else None for name, workers in MODES.items()}
    for pool in pools.values():
        if pool is not None:
            list(pool.map(abs, range(8)))  # start the processes before the clock does
    runs: dict[str, list[tuple[float, float, dict[str, float]]]] = {name: [] for name in MODES}
    try:
        with tempfile.TemporaryDirectory(prefix="exportd-bench-") as folder:
            root = Path(folder)
            project = load_project(build_project(root / "project", args.images, 512, 384))
            out = root / "out"
            out.mkdir()
            for round_ in range(args.rounds):
                for name, pool in pools.items():
                    runs[name].append(run(project, out, pool, round_))
    finally:
        for pool in pools.values():
            if pool is not None:
                pool.shutdown()
    medians = {}
    for name, results in runs.items():
        results.sort(key=lambda r: r[0])
        seconds, cpu, stages = results[len(results) // 2]
        medians[name] = statistics.median(r[0] for r in results)
        split = ", ".join(f"{stage} {value:.2f}" for stage, value in stages.items() if value >= 0.005)
        print(f"  {name:<10} median {medians[name]:6.2f} s  {args.images / medians[name]:6.1f} images/s"
              f"  pipeline thread CPU {cpu:5.2f} s  [{split}]")
    over_one = medians["1 worker"] / medians["2 workers"]
    over_inline = medians["inline"] / medians["2 workers"]
    print(f"  speed-up 2 workers / 1 worker: {over_one:.2f}x  (target >= {TARGET}x: "
          f"{verdict(over_one, TARGET, higher_is_better=True)})")
    print(f"  speed-up 2 workers / inline:   {over_inline:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
