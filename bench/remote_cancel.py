"""Remote cancel: a cancel through an API node stops the export in a worker process (target p99 <= 25 ms).

Method. A cluster started with ``deploy/cluster.py``: 2 API nodes, 2 ``exportd
worker`` processes of concurrency 1, a fresh PostgreSQL database, a Redis server
of the benchmark's own; items take 10 ms (``EXPORTD_PIPELINE_ITEM_DELAY_SECONDS``,
as in ``cancel_latency.py``) and the project has 200 images, so an export runs
for seconds. For each of ``--cancels`` rounds: start an export through node A,
wait until its attempt folder exists in the shared storage and it reported
progress, then cancel it through node B, stamping the request's send and the
answer's arrival, and poll (every 0.5 ms, on a thread) for the attempt folder to
disappear: the worker deletes it right after its pipeline stopped. Printed:

* answer -> folder removed: a lower bound of "commit -> pipeline stopped in the
  worker" (the commit precedes the answer);
* send -> folder removed: an upper bound of it, the whole remote cancel as a
  client sees it (the target is judged on this one);
* the cancel's HTTP round trip, and ``GET /api/healthz`` on the same node
  measured in the same rounds: their p99 ratio (target <= 1.3x).

All processes share this machine's clock (``perf_counter`` is CLOCK_MONOTONIC).

Run: ``.venv/bin/python bench/remote_cancel.py [--cancels 200]``
Needs PostgreSQL (``EXPORTD_TEST_PG_DSN``) and redis-server.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx
from _harness import header, spread_line, verdict
from cluster_scaling import bench_cluster

from exportd.synthetic import synthetic_project

TARGET_STOP_P99 = 0.025
TARGET_RATIO = 1.3


def wait_gone(folder: Path, timeout: float = 10.0) -> float:
    deadline = time.perf_counter() + timeout
    while folder.exists():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{folder} is still there")
        time.sleep(0.0005)
    return time.perf_counter()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cancels", type=int, default=200)
    args = parser.parse_args()
    header(f"Remote cancel: {args.cancels} cancels through an API node, exports in 2 worker processes")
    with tempfile.TemporaryDirectory(prefix="exportd-remote-cancel-") as folder:
        root = Path(folder)
        async with bench_cluster(root, EXPORTD_MAX_ACTIVE_EXPORTS_PER_USER="1000", EXPORTD_WORKER_CONCURRENCY="1",
                                 EXPORTD_PIPELINE_ITEM_DELAY_SECONDS="0.01",
                                 EXPORTD_PASSWORD_HASH_FAST="true") as cluster:
            state = await cluster.start(api_nodes=2, workers=2)
            await rounds([node["url"] for node in state["api"]], root / "storage" / "exports", args.cancels)


async def rounds(nodes: list[str], exports: Path, cancels: int) -> None:
    a, b = (httpx.AsyncClient(base_url=url, timeout=30) for url in nodes)
    async with a, b:
        await a.post("/api/auth/register", json={"email": "bench@example.com", "password": "correct horse"})
        token = (await a.post("/api/auth/login", json={"email": "bench@example.com",
                                                        "password": "correct horse"})).json()["token"]
        for http in (a, b):
            http.headers["Authorization"] = f"Bearer {token}"
        project = (await a.post("/api/projects", json={"name": "Remote cancel"})).json()["id"]
        files = [("files", (name, png, "image/png")) for name, png, _ in synthetic_project(count=50, seed=3)]
        for _ in range(4):  # 200 images
            (await a.post(f"/api/projects/{project}/images", files=files)).raise_for_status()
        options = {"includeVisualizations": False, "annotationFormats": ["json"], "metricsFormats": ["csv"]}
        stop, total, trip, health = [], [], [], []
        for _ in range(cancels):
            job = (await a.post(f"/api/projects/{project}/export", json={"options": options})).json()["id"]
            while True:  # running in a worker, past its first items
                status = (await a.get(f"/api/projects/{project}/export/{job}/status")).json()
                if status["status"] == "processing" and status["progress"] > 0:
                    break
                await asyncio.sleep(0.005)
            folder = next(exports.glob(f"{job}.*"))
            health_started = time.perf_counter()
            await b.get("/api/healthz")
            health.append(time.perf_counter() - health_started)
            watcher = asyncio.create_task(asyncio.to_thread(wait_gone, folder))
            sent = time.perf_counter()
            answer = await b.post(f"/api/projects/{project}/export/{job}/cancel")
            answered = time.perf_counter()
            assert answer.status_code == 200, answer.text
            gone = await watcher
            stop.append(max(0.0, gone - answered))
            total.append(gone - sent)
            trip.append(answered - sent)
    print(spread_line("answer -> folder removed", stop))
    print(spread_line("send -> folder removed", total))
    print(spread_line("cancel HTTP round trip", trip))
    print(spread_line("GET /api/healthz", health))
    p99 = sorted(total)[int(0.99 * (len(total) - 1))]
    ratio = sorted(trip)[int(0.99 * (len(trip) - 1))] / sorted(health)[int(0.99 * (len(health) - 1))]
    print(f"  send -> stopped p99 {p99 * 1000:.1f} ms (target <= {TARGET_STOP_P99 * 1000:.0f} ms) "
          f"{verdict(p99, TARGET_STOP_P99)}")
    print(f"  cancel round trip p99 / healthz p99: {ratio:.2f}x (target <= {TARGET_RATIO}x) "
          f"{verdict(ratio, TARGET_RATIO)}")


if __name__ == "__main__":
    asyncio.run(main())
