"""Scaling out: the demo project's full export, jobs/s with 2 worker processes against 1 (target >= 1.7x).

Method. For each worker count W (1, then 2), a fresh cluster is started with
``deploy/cluster.py`` (the operator's script): one API node, W ``exportd worker``
processes of concurrency 1, one fresh PostgreSQL database, a Redis server of
the benchmark's own on a free port. The demo project (24 synthetic microscopy
images with cell polygons) is seeded into it, then ``--jobs`` exports with the
default options (originals, overlays, COCO, JSON, the Excel workbook,
documentation) are started through the API node at once, and the clock runs
from the first start to the moment the user's Socket.IO client (websocket,
connected to the API node before the start) has received the last one's
``export:completed``: the push path a user's browser follows, which costs the
API node a few packets per export, where polling every export's status would
take a good part of a core from the workers. A warm-up export runs first on
each cluster, so imports and caches are paid before the clock starts. Printed:
seconds, jobs/s for each W, the ratio W=2 / W=1, and the CPU each group of
processes used per export (the API node, the workers with their children, the
PostgreSQL server with all its backends, Redis, the benchmark) with the cores
they kept busy.

On a machine with 2 cores shared with other work, the ratio is bounded by the
cores that are free: the figure says which machine it ran on.

Run: ``.venv/bin/python bench/cluster_scaling.py [--jobs 8]``
Needs PostgreSQL (``EXPORTD_TEST_PG_DSN``, default postgresql://postgres@127.0.0.1:5432/test) and redis-server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import socketio
from _harness import Groups, header, postgres_pids, verdict

from exportd.config import Settings
from exportd.demo import DEMO_EMAIL, DEMO_PASSWORD, seed_demo_with

PG_ADMIN_DSN = os.environ.get("EXPORTD_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "cluster.py"
TARGET = 1.7


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def admin(statement: str) -> None:
    connection = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def scratch_database() -> AsyncIterator[str]:
    """A fresh, empty database of the benchmark's own on the test server (its libpq DSN), dropped afterwards."""
    name = f"exportd_bench_{uuid.uuid4().hex[:10]}"
    await admin(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class BenchCluster:
    """A cluster of a benchmark's own: its settings (`env`), and `start` to run `deploy/cluster.py` on them."""

    root: Path
    env: dict[str, str]
    redis: subprocess.Popen
    supervisor: subprocess.Popen | None = None

    @property
    def database_url(self) -> str:
        return self.env["EXPORTD_DATABASE_URL"]

    async def start(self, *, api_nodes: int, workers: int, timeout: float = 120) -> dict:
        """Start the operator's script with its own logs; return its state (the nodes' URLs and pids)."""
        state_file = self.root / "cluster.json"
        command = [sys.executable, str(DEPLOY), "--api-nodes", str(api_nodes), "--workers", str(workers), "--port",
                   "0", "--log-dir", str(self.root / "logs"), "--state-file", str(state_file)]
        self.supervisor = subprocess.Popen(command, env=self.env, stdout=subprocess.DEVNULL)  # noqa: ASYNC220
        deadline = time.monotonic() + timeout
        while not state_file.exists():
            if self.supervisor.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the cluster did not start (see its logs in {self.root / 'logs'})")
            await asyncio.sleep(0.1)
        return json.loads(state_file.read_text())


@contextlib.asynccontextmanager
async def bench_cluster(root: Path, **settings: str) -> AsyncIterator[BenchCluster]:
    """A fresh PostgreSQL database and a Redis server on a free port, with the settings a cluster on them
    needs (`settings` added); on the way out the cluster (if started), Redis and the database are removed."""
    name = f"exportd_bench_{uuid.uuid4().hex[:10]}"
    await admin(f'CREATE DATABASE "{name}"')
    host_part = PG_ADMIN_DSN.split("://", 1)[1].rsplit("/", 1)[0]
    port = free_port()
    redis = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",  # noqa: ASYNC220 - started once, not awaited
                              "127.0.0.1", "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    env = {key: value for key, value in os.environ.items() if not key.startswith("EXPORTD_")}
    env.update(EXPORTD_DATABASE_URL=f"postgresql+asyncpg://{host_part}/{name}",
               EXPORTD_BROKER_URL=f"redis://127.0.0.1:{port}/0", EXPORTD_SECRET_KEY="bench-" + "k" * 40,
               EXPORTD_DATA_DIR=str(root / "data"), EXPORTD_STORAGE_DIR=str(root / "storage"), **settings)
    cluster = BenchCluster(root, env, redis)
    try:
        yield cluster
    finally:
        if cluster.supervisor is not None:
            cluster.supervisor.send_signal(signal.SIGTERM)
            cluster.supervisor.wait(60)
        redis.kill()
        redis.wait()
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def measure(workers: int, jobs: int, root: Path) -> tuple[float, dict[str, float]]:
    """Seconds from the first start to the last completion of `jobs` demo exports on `workers` workers,
    and the CPU seconds each group of processes used meanwhile."""
    async with bench_cluster(root, EXPORTD_MAX_ACTIVE_EXPORTS_PER_USER="1000",
                             EXPORTD_WORKER_CONCURRENCY="1") as cluster:
        settings = Settings(database_url=cluster.database_url, data_dir=root / "data",
                            storage_dir=root / "storage", secret_key=cluster.env["EXPORTD_SECRET_KEY"])
        _, project_id = await seed_demo_with(settings)
        state = await cluster.start(api_nodes=1, workers=workers)
        url = state["api"][0]["url"]
        groups = Groups({"API node": [node["pid"] for node in state["api"]],
                         "workers": [worker["pid"] for worker in state["workers"]],
                         "PostgreSQL": postgres_pids(), "Redis": [cluster.redis.pid], "this process": [os.getpid()]})
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            login = await http.post("/api/auth/login", json={"email": DEMO_EMAIL, "password": DEMO_PASSWORD})
            token = login.json()["token"]
            http.headers["Authorization"] = f"Bearer {token}"
            ends = Ends()
            socket = socketio.AsyncClient(reconnection=False)
            socket.on("*", ends.on_event)
            await socket.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=20)
            try:
                await run(http, project_id, 1, ends)  # warm-up
                before = groups.read()
                started = time.perf_counter()
                await run(http, project_id, jobs, ends)
                seconds = time.perf_counter() - started
                after = groups.read()
            finally:
                await socket.disconnect()
            return seconds, {group: after[group] - before[group] for group in after}


class Ends:
    """The terminal event of every export, as the user's socket receives them."""

    def __init__(self) -> None:
        self.ended: dict[str, str] = {}
        self.changed = asyncio.Event()

    async def on_event(self, event: str, data=None) -> None:
        if event in ("export:completed", "export:failed", "export:cancelled") and isinstance(data, dict):
            self.ended[data["jobId"]] = event
            self.changed.set()

    async def wait(self, ids: list[str], timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while any(job_id not in self.ended for job_id in ids):
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), deadline - time.monotonic())
        if failed := {job_id: self.ended[job_id] for job_id in ids if self.ended[job_id] != "export:completed"}:
            raise RuntimeError(f"exports did not complete: {failed}")


async def run(http: httpx.AsyncClient, project_id: str, jobs: int, ends: Ends) -> None:
    """Start `jobs` exports at once, then wait for every one's `export:completed` on the socket."""
    ids = []
    for _ in range(jobs):
        response = await http.post(f"/api/projects/{project_id}/export", json={})
        response.raise_for_status()
        ids.append(response.json()["id"])
    await ends.wait(ids)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=8)
    args = parser.parse_args()
    header(f"Scaling out: {args.jobs} demo exports, 1 worker process against 2 ({os.cpu_count()} CPUs)")
    seconds = {}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory(prefix=f"exportd-scaling-{workers}-") as folder:
            seconds[workers], cpu = await measure(workers, args.jobs, Path(folder))
        print(f"  {workers} worker(s): {args.jobs} exports in {seconds[workers]:.2f} s = "
              f"{args.jobs / seconds[workers]:.3f} jobs/s   (load average {os.getloadavg()[0]:.1f})")
        print("    CPU per export: " + ", ".join(f"{group} {used / args.jobs * 1000:.0f} ms" for group, used in cpu.items())
              + f"; all {sum(cpu.values()) / seconds[workers]:.2f} cores busy on average")
    ratio = seconds[1] / seconds[2]
    print(f"  2 workers / 1 worker: {ratio:.2f}x (target >= {TARGET}x) {verdict(ratio, TARGET, lower_is_better=False)}")


if __name__ == "__main__":
    asyncio.run(main())
