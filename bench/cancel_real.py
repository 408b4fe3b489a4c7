"""Cancel on real exports, black-box: from the cancel request to the worker having stopped and
removed its scratch folder.

A real ``exportd serve`` in a subprocess, with production settings (a process
pool of the CPU count, overlays, the Excel workbook: the default options), on a
project of synthetic 512 × 384 images with cells. One export at a time is
started over HTTP; once its scratch folder (``storage/exports/<job>.<attempt>/``)
exists, the benchmark waits a random moment within the export's measured
duration, sends ``POST …/cancel`` and polls the file system until the folder
is gone. Measured per cancel: the HTTP round trip, and the time from sending
the request to the folder's removal. Cancels that arrive after the export
completed are counted and left out. Nothing behind the API is observed.
Right before each cancel, a ``GET /api/healthz`` is timed at the same moment
of the export: the floor any round trip to this server costs then (the event
loop waking, the GIL, the client), to read the cancel's own cost against.

Target (p99 of request → folder removed): ≤ 25 ms.

Run: ``.venv/bin/python bench/cancel_real.py [--cancels 100] [--images 24]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import PASSWORD, header, percentile, spread_line, verdict  # noqa: E402

from exportd.synthetic import synthetic_project  # noqa: E402

TARGET_MS = 25.0
POLL_SECONDS = 0.0005


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def until(predicate, timeout: float, what: str, interval: float = POLL_SECONDS):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(interval)


async def run(args: argparse.Namespace, data: Path) -> int:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    exportd = Path(sys.executable).with_name("exportd")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORTD_")}
    server = subprocess.Popen([str(exportd), "serve", "--data-dir", str(data), "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    exports = data / "storage" / "exports"  # the default EXPORTD_STORAGE_DIR is <data>/storage
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            async def healthy():
                try:
                    return (await http.get("/api/healthz")).status_code == 200
                except httpx.TransportError:
                    return False
            await until(healthy, 60, "exportd to serve", 0.1)
            await http.post("/api/auth/register", json={"email": "bench@example.com", "password": PASSWORD})
            token = (await http.post("/api/auth/login", json={"email": "bench@example.com",
                                                              "password": PASSWORD})).json()["token"]
            http.headers["Authorization"] = f"Bearer {token}"
            project_id = (await http.post("/api/projects", json={"name": "Cancel bench"})).json()["id"]
            files, segmentation = [], {}
            for name, png, polygons in synthetic_project(count=args.images, seed=5):
                files.append(("files", (name, png, "image/png")))
                segmentation[name] = polygons
            uploaded = await http.post(f"/api/projects/{project_id}/images", files=files,
                                       data={"segmentation": json.dumps(segmentation)})
            uploaded.raise_for_status()
            base = f"/api/projects/{project_id}/export"

            async def start() -> tuple[str, Path]:
                job_id = (await http.post(base, json={})).json()["id"]
                folder = await until(lambda: next(iter(exports.glob(f"{job_id}.*")), None), 30, "the scratch folder")
                return job_id, folder

            async def finished(job_id: str) -> dict:
                return await until(lambda: _terminal(http, base, job_id), 120, "the export to end", 0.01)

            durations = []
            for _ in range(3):
                job_id, _ = await start()
                began = time.perf_counter()
                await finished(job_id)
                durations.append(time.perf_counter() - began)
            duration = min(durations)
            print(f"  a whole export of {args.images} images (default options), from its folder's creation: "
                  f"{', '.join(f'{d:.2f}' for d in durations)} s; cancels land within the shortest")

            rng = random.Random(7)
            round_trips, stopped, after_answer, floor, late = [], [], [], [], 0
            while len(stopped) < args.cancels:
                job_id, folder = await start()
                await asyncio.sleep(rng.uniform(0, duration * 0.9))
                probed = time.perf_counter()
                (await http.get("/api/healthz")).raise_for_status()
                probe = time.perf_counter() - probed
                sent = time.perf_counter()
                answer = await http.post(f"{base}/{job_id}/cancel")
                answered = time.perf_counter()
                if answer.status_code != 200:
                    late += 1  # it completed first
                    await finished(job_id)
                    continue
                await until(lambda: not folder.exists(), 60, "the scratch folder to go")
                removed = time.perf_counter()
                round_trips.append(answered - sent)
                floor.append(probe)
                stopped.append(removed - sent)
                after_answer.append(max(0.0, removed - answered))
    finally:
        server.terminate()
        server.wait(30)
    print(spread_line("cancel HTTP round trip", round_trips))
    print(spread_line("cancel sent -> scratch folder removed", stopped))
    print(spread_line("answer received -> folder removed", after_answer))
    print(spread_line("GET /api/healthz just before", floor))
    p99 = percentile([s * 1000 for s in stopped], 99)
    print(f"  {late} cancels came after completion (left out)")
    print(f"  p99 {p99:.1f} ms against the target {TARGET_MS:.0f} ms: {verdict(p99, TARGET_MS)}")
    cancel_p99, floor_p99 = (percentile([s * 1000 for s in samples], 99) for samples in (round_trips, floor))
    print(f"  cancel round trip p99 / healthz p99, same moments: {cancel_p99 / floor_p99:.2f}x")
    return 0


async def _terminal(http: httpx.AsyncClient, base: str, job_id: str) -> dict | None:
    job = (await http.get(f"{base}/{job_id}/status")).json()
    return job if job["status"] in ("completed", "failed", "cancelled") else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cancels", type=int, default=100)
    parser.add_argument("--images", type=int, default=24)
    args = parser.parse_args()
    header(f"cancel_real: {args.cancels} cancels of real exports (production settings, black-box)")
    with tempfile.TemporaryDirectory(prefix="exportd-bench-") as folder:
        return asyncio.run(run(args, Path(folder) / "data"))


if __name__ == "__main__":
    sys.exit(main())
