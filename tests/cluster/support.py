"""A cluster of real processes for the cluster tier, and what its tests share."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from tests.conftest import Served, eventually

PG_ADMIN_DSN = os.environ.get("EXPORTD_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "cluster.py"
SECRET = "cluster-test-secret-key-with-enough-entropy-0123456789"
REDIS_DB = 3  #: the cluster's Redis database number (on a server of the test's own)
TERMINAL = ("completed", "failed", "cancelled")
HOLD_PREFIX = "exportd:holds:"


def proc_stat(path: Path) -> list[str]:
    """The fields of a /proc stat file after the command's name: [state, ppid, pgrp, …]."""
    return path.read_text().rsplit(")", 1)[1].split()


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (a worker's prefork children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(proc_stat(entry / "stat")[1]) == pid:
                    found.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                pass
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def database() -> Iterator[str]:
    """A fresh PostgreSQL database for one cluster, dropped afterwards; yields its SQLAlchemy URL."""
    import asyncpg

    name = f"exportd_cluster_{uuid.uuid4().hex[:12]}"

    async def admin(statement: str) -> None:
        connection = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    host_part = PG_ADMIN_DSN.split("://", 1)[1].rsplit("/", 1)[0]
    try:
        yield f"postgresql+asyncpg://{host_part}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@dataclass
class RedisServer:
    """A redis-server of the test's own, on a free loopback port, that a test may stop and start again."""

    binary: str
    folder: Path
    port: int
    process: subprocess.Popen | None = None

    @classmethod
    def start(cls, binary: str, folder: Path) -> RedisServer:
        folder.mkdir(parents=True, exist_ok=True)
        server = cls(binary, folder, free_port())
        server.up()
        return server

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/{REDIS_DB}"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=5)

    def up(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder), "--logfile", str(self.folder / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                if self.client().ping():
                    return
            except redis.ConnectionError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.05)

    def down(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        self.down()


@dataclass
class Node:
    name: str
    pid: int
    url: str = ""

    def alive(self) -> bool:
        """Running (a killed process its parent has not reaped yet is a zombie: not alive)."""
        try:
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return False
        return state != "Z"


@dataclass
class Cluster:
    root: Path
    redis: RedisServer
    supervisor: subprocess.Popen
    api: list[Node] = field(default_factory=list)
    workers: list[Node] = field(default_factory=list)
    running: bool = True

    @classmethod
    def start(cls, root: Path, *, database_url: str, redis: RedisServer, **settings: str) -> Cluster:
        root.mkdir(parents=True, exist_ok=True)
        env = {key: value for key, value in os.environ.items() if not key.startswith("EXPORTD_")}
        env.update({
            "EXPORTD_DATABASE_URL": database_url,
            "EXPORTD_BROKER_URL": redis.url,
            "EXPORTD_SECRET_KEY": SECRET,
            "EXPORTD_DATA_DIR": str(root / "data"),
            "EXPORTD_STORAGE_DIR": str(root / "storage"),  # every node's: the shared storage of this cluster
            "EXPORTD_PASSWORD_HASH_FAST": "true",
            "EXPORTD_TEST_HOLDS": "true",
            "EXPORTD_WORKER_CONCURRENCY": "1",
            "EXPORTD_PROGRESS_INTERVAL_SECONDS": "0.05",
            "EXPORTD_STORE_CHECK_SECONDS": "0.2",
            "EXPORTD_LISTENER_CHECK_SECONDS": "1",
            "EXPORTD_LEASE_SECONDS": "10",
            "EXPORTD_JANITOR_INTERVAL_SECONDS": "2",
            "EXPORTD_PENDING_RESEND_SECONDS": "3",
        })
        env.update(settings)
        state_file = root / "cluster.json"
        supervisor = subprocess.Popen(
            [sys.executable, str(DEPLOY), "--api-nodes", "2", "--workers", "2", "--port", "0",
             "--log-dir", str(root / "logs"), "--state-file", str(state_file)],
            env=env, cwd=root, stdout=open(root / "cluster.out", "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
        deadline = time.monotonic() + 120
        while not state_file.exists():
            if supervisor.poll() is not None or time.monotonic() > deadline:
                supervisor.kill()
                raise RuntimeError(f"the cluster did not start:\n{(root / 'cluster.out').read_text()[-3000:]}")
            time.sleep(0.1)
        state = json.loads(state_file.read_text())
        return cls(root, redis, supervisor, api=[Node(n["name"], n["pid"], n["url"]) for n in state["api"]],
                   workers=[Node(n["name"], n["pid"]) for n in state["workers"]])

    def stop(self) -> None:
        self.running = False
        self.release_all_holds()
        if self.supervisor.poll() is None:
            self.supervisor.send_signal(signal.SIGTERM)
            try:
                self.supervisor.wait(40)
            except subprocess.TimeoutExpired:
                self.supervisor.kill()
                self.supervisor.wait()
        for node in [*self.api, *self.workers]:  # nothing may outlive the test
            try:
                os.killpg(node.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    # -- the nodes ---------------------------------------------------------------

    def node(self, index: int) -> Served:
        """API node `index` with the suite's HTTP and socket helpers."""
        return Served(app=None, url=self.api[index].url)

    def kill(self, node: Node) -> None:
        """kill -9 of a node and every process of its group (a worker's prefork children too)."""
        os.killpg(node.pid, signal.SIGKILL)

    @property
    def storage_dir(self) -> Path:
        return self.root / "storage"

    def attempt_folders(self, job_id: str) -> list[Path]:
        return sorted((self.storage_dir / "exports").glob(f"{job_id}.*"))

    def zips(self, job_id: str) -> list[Path]:
        return [path for folder in self.attempt_folders(job_id) for path in folder.rglob("*.zip")]

    def logs(self) -> str:
        return "\n".join(f"== {path.name}\n{path.read_text(errors='replace')[-4000:]}"
                         for path in sorted((self.root / "logs").glob("*.log")))

    # -- holds (kept in the cluster's Redis, armed through an API node) ---------------

    async def arm(self, point: str, after_items: int = 1) -> None:
        async with httpx.AsyncClient(base_url=self.api[0].url, timeout=10) as http:
            response = await http.post("/api/testing/holds", json={"point": point, "afterItems": after_items})
            assert response.status_code == 200, response.text

    async def held(self, job_id: str, point: str, timeout: float = 20.0) -> None:
        async def state() -> bool:
            async with httpx.AsyncClient(base_url=self.api[1].url, timeout=10) as http:
                return (await http.get(f"/api/testing/holds/{job_id}/{point}")).json()["state"] == "held"
        await eventually(state, timeout, interval=0.01, message=f"job {job_id} to be held at {point}")

    async def release(self, job_id: str, point: str) -> None:
        async with httpx.AsyncClient(base_url=self.api[0].url, timeout=10) as http:
            response = await http.post(f"/api/testing/holds/{job_id}/{point}/release")
            assert response.status_code == 200, response.text

    def disarm(self, point: str) -> None:
        self.redis.client().delete(f"{HOLD_PREFIX}armed:{point}")

    def release_all_holds(self) -> None:
        try:
            client = self.redis.client()
            client.delete(f"{HOLD_PREFIX}armed:item", f"{HOLD_PREFIX}armed:before_complete")
            for key in client.scan_iter(f"{HOLD_PREFIX}held:*"):
                if client.get(key) == "held":
                    _, job_id, point = key[len(HOLD_PREFIX):].split(":")
                    client.set(key, "released")
                    client.rpush(f"{HOLD_PREFIX}release:{job_id}:{point}", 1)
        except redis.RedisError:
            pass

    def holder(self, job_id: str) -> Node:
        """The worker whose process holds the job at a hold."""
        pid = int(self.redis.client().get(f"{HOLD_PREFIX}holder:{job_id}") or 0)
        group = os.getpgid(pid)
        return next(worker for worker in self.workers if worker.pid == group)

    async def occupy_all_but(self, free: Node) -> list[Blocker]:
        """Hold an export in every worker but `free`, so the next export can only run there.

        Needs ``item`` armed. A worker runs one export at a time and reserves nothing beyond it
        (concurrency 1, prefetch 1, late acks), so a worker holding an export takes no task until it
        lets it go. Each blocker is an export of an account of its own; one that lands on `free` is
        cancelled and let go, and its task has ended once its attempt folder is gone."""
        blockers: list[Blocker] = []
        node = self.node(0)
        while len(blockers) < len(self.workers) - 1:
            _, token = await node.user(f"blocker-{uuid.uuid4().hex[:8]}@example.com")
            project_id, _ = await node.project(token, images=3)
            async with node.client(token) as http:
                job_id = await start_export(http, project_id)
                await self.held(job_id, "item")
                if self.holder(job_id) != free:
                    blockers.append(Blocker(token, project_id, job_id))
                    continue
                cancelled = await http.post(f"/api/projects/{project_id}/export/{job_id}/cancel")
                assert cancelled.status_code == 200, cancelled.text
            await self.release(job_id, "item")
            await eventually(lambda job_id=job_id: self.attempt_folders(job_id) == [],
                             message=f"blocker {job_id} to leave {free.name}")
        return blockers

    async def let_go(self, blockers: list[Blocker]) -> None:
        """Cancel the blockers and release their holds."""
        node = self.node(0)
        for blocker in blockers:
            async with node.client(blocker.token) as http:
                await http.post(f"/api/projects/{blocker.project_id}/export/{blocker.job_id}/cancel")
            await self.release(blocker.job_id, "item")


@dataclass(frozen=True)
class Blocker:
    """An export held in a worker so that the worker takes no other."""

    token: str
    project_id: str
    job_id: str


# -- HTTP helpers ---------------------------------------------------------------------------------------------------

def client(node: Served, token: str) -> httpx.AsyncClient:
    return node.client(token)


async def start_export(http: httpx.AsyncClient, project_id: str, options: dict | None = None) -> str:
    response = await http.post(f"/api/projects/{project_id}/export", json={"options": options or {}})
    assert response.status_code == 202, response.text
    return response.json()["id"]


async def status(http: httpx.AsyncClient, project_id: str, job_id: str) -> dict[str, Any]:
    response = await http.get(f"/api/projects/{project_id}/export/{job_id}/status")
    assert response.status_code == 200, response.text
    return response.json()


async def settled(http: httpx.AsyncClient, project_id: str, job_id: str, timeout: float = 30.0) -> dict[str, Any]:
    async def terminal():
        job = await status(http, project_id, job_id)
        return job if job["status"] in TERMINAL else None
    return await eventually(terminal, timeout, interval=0.02, message=f"job {job_id} to end")


async def stored_log(http: httpx.AsyncClient, project_id: str, job_id: str) -> list[dict[str, Any]]:
    response = await http.get(f"/api/projects/{project_id}/export/{job_id}/events", params={"after": 0})
    assert response.status_code == 200, response.text
    body = response.json()
    return body["events"] if isinstance(body, dict) else body


def assert_log_is_sound(events: list[dict[str, Any]]) -> None:
    """seq runs 1..n with no gap; exactly one terminal event, and it is the last."""
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), [e["seq"] for e in events]
    terminal = [e for e in events if e["type"] in {f"export:{s}" for s in TERMINAL}]
    assert len(terminal) == 1, [e["type"] for e in events]
    assert events[-1] is terminal[0]


async def metric(node: Served, name: str) -> float:
    """One sample of an API node's /api/metrics, by name."""
    async with httpx.AsyncClient(base_url=node.url, timeout=10) as http:
        text = (await http.get("/api/metrics")).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not in {node.url}/api/metrics")
