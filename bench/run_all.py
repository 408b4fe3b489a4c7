"""Run every benchmark in sequence, each in its own process, and say how long each took.

Run: ``.venv/bin/python bench/run_all.py [NAME ...]`` (every benchmark by default), or ``make bench``. Extra figures and options are in each script's docstring.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCHMARKS = ("cancel_latency", "event_latency", "throughput", "store_writes", "export_originals",
              "export_parallel", "export_memory", "import_masks", "cluster_scaling", "saturation",
              "remote_cancel", "cluster_throughput", "worker_path", "fanout", "notify_commits", "listener_wakeups",
              "cancel_real", "geometry_limits", "worst_image_stages", "cancel_trips", "create_trips")


def main() -> int:
    here = Path(__file__).resolve().parent
    chosen = sys.argv[1:] or list(BENCHMARKS)
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    results = []
    for name in chosen:
        began = time.perf_counter()
        code = subprocess.call([sys.executable, str(here / f"{name}.py")], cwd=here.parent)
        results.append((name, code, time.perf_counter() - began))
        print(flush=True)
    print("== summary ==")
    for name, code, seconds in results:
        print(f"  {name:<16} {'ok' if code == 0 else f'FAILED (exit {code})':<18} {seconds:6.1f} s")
    return 0 if all(code == 0 for _, code, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
