"""Fixtures shared by the integration and acceptance tiers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio
import uvicorn

from exportd.api.app import create_app
from exportd.domain.requests import Credentials, PolygonIn
from exportd.engine.hooks import EngineHooks
from exportd.runtime import Runtime
from exportd.services import Upload
from exportd.synthetic import synthetic_project
from exportd.testing import RecordingSink, test_settings


@contextlib.asynccontextmanager
async def users_row_held(user_id: str) -> AsyncIterator[tuple[Any, Any]]:
    """(connection, transaction) of another PostgreSQL connection holding `user_id`'s row FOR UPDATE
    in an open transaction, as a concurrent completion does; the test commits it or it is dropped
    with the connection on the way out."""
    import asyncpg

    other = await asyncpg.connect(os.environ["EXPORTD_DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://"))
    try:
        transaction = other.transaction()
        await transaction.start()
        await other.execute("SELECT id FROM users WHERE id = $1 FOR UPDATE", user_id)
        yield other, transaction
    finally:
        await other.close()


async def until_another_waits_for_a_lock(other, message: str) -> None:
    """Poll, through `other`, until some other connection to the database waits for a lock."""
    async def blocked() -> bool:
        return bool(await other.fetchval(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE NOT l.granted AND a.datname = current_database() AND a.pid <> pg_backend_pid()"))
    await eventually(blocked, 10, message=message)


async def eventually(predicate, timeout: float = 10.0, interval: float = 0.01, message: str = "condition"):
    """Poll `predicate` (sync or async) until it is truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        await asyncio.sleep(interval)


def export_files(settings, job_id: str, pattern: str = "*") -> list[Path]:
    """Every file in any export folder of the job (one folder per attempt: ``<job>.<attempt>``)."""
    return [path for folder in settings.exports_dir.glob(f"{job_id}.*") for path in folder.rglob(pattern)
            if path.is_file()]


def export_folders(settings, job_id: str) -> list[Path]:
    """Every folder of the job's attempts, empty or not."""
    return sorted(settings.exports_dir.glob(f"{job_id}.*"))


@dataclass
class World:
    """A started runtime with one user and one project, and what its relay emitted."""

    runtime: Runtime
    sink: RecordingSink
    user_id: str
    project_id: str
    image_ids: list[str] = field(default_factory=list)

    @property
    def services(self):
        return self.runtime.services

    async def job(self, job_id: str):
        return await self.runtime.store.query(lambda repo: repo.job(job_id))

    async def stored_events(self, job_id: str) -> list[dict[str, Any]]:
        return await self.runtime.store.query(lambda repo: repo.events_after(job_id, 0))

    async def settled(self, job_id: str, timeout: float = 10.0):
        """Wait until the job is terminal and its worker has let go of it."""
        await eventually(lambda: self._terminal_and_idle(job_id), timeout, message=f"job {job_id} to settle")
        await self.runtime.relay.drain()
        return await self.job(job_id)

    async def _terminal_and_idle(self, job_id: str) -> bool:
        job = await self.job(job_id)
        return job.status in ("completed", "failed", "cancelled") and job_id not in self.runtime.engine.running


async def make_world(tmp_path, *, images: int = 3, hooks: EngineHooks | None = None, **overrides) -> World:
    runtime = Runtime(test_settings(tmp_path / "data", **overrides), hooks=hooks)
    sink = RecordingSink()
    runtime.relay._sink = sink
    await runtime.start()
    user = await runtime.services.register(Credentials(email="ada@example.com", password="correct horse"))
    project = await runtime.services.create_project(user.id, "Spheroids")
    image_ids = []
    if images:
        uploads, shapes = [], {}
        for name, png, polygons in synthetic_project(count=images, seed=1):
            uploads.append(Upload(name=name, data=png))
            shapes[name] = [PolygonIn.model_validate(p) for p in polygons]
        rows = await runtime.services.add_images(user.id, project.id, uploads, shapes)
        image_ids = [row.id for row in rows]
    return World(runtime, sink, user.id, project.id, image_ids)


@pytest.fixture
async def world(tmp_path) -> AsyncIterator[World]:
    w = await make_world(tmp_path)
    try:
        yield w
    finally:
        await w.runtime.stop()


@dataclass
class Served:
    """The real ASGI app served by uvicorn on a loopback port, in the test's event loop."""

    app: Any
    url: str

    @property
    def runtime(self) -> Runtime:
        return self.app.runtime

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)

    async def user(self, email: str, password: str = "correct horse") -> tuple[str, str]:
        """Register and log in; returns (user id, token)."""
        async with self.client() as http:
            created = await http.post("/api/auth/register", json={"email": email, "password": password})
            assert created.status_code == 201, created.text
            login = await http.post("/api/auth/login", json={"email": email, "password": password})
            assert login.status_code == 200, login.text
            return created.json()["user"]["id"], login.json()["token"]

    async def project(self, token: str, images: int = 2, name: str = "Spheroids") -> tuple[str, list[str]]:
        """Create a project with `images` synthetic images; returns (project id, image ids)."""
        import json

        async with self.client(token) as http:
            project = (await http.post("/api/projects", json={"name": name})).json()
            if images:
                files, segmentation = [], {}
                for file_name, png, polygons in synthetic_project(count=images, seed=2):
                    files.append(("files", (file_name, png, "image/png")))
                    segmentation[file_name] = polygons
                response = await http.post(f"/api/projects/{project['id']}/images", files=files,
                                           data={"segmentation": json.dumps(segmentation)})
                assert response.status_code == 201, response.text
                return project["id"], [image["id"] for image in response.json()["images"]]
            return project["id"], []

    async def socket(self, token: str) -> tuple[socketio.AsyncClient, list[tuple[str, dict]]]:
        """A connected Socket.IO client and the list every export event it receives lands in."""
        client = socketio.AsyncClient(reconnection=False)
        received: list[tuple[str, dict]] = []

        @client.on("*")
        async def _any(event, data):
            received.append((event, data))

        await client.connect(self.url, auth={"token": token}, transports=["websocket"], wait_timeout=10)
        return client, received


async def serve(tmp_path, hooks: EngineHooks | None = None, **overrides) -> tuple[Served, uvicorn.Server, asyncio.Task]:
    app = create_app(test_settings(tmp_path / "data", **overrides), hooks=hooks)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started or task.done(), message="uvicorn to start")
    if task.done():
        task.result()
    port = server.servers[0].sockets[0].getsockname()[1]
    return Served(app, f"http://127.0.0.1:{port}"), server, task


@pytest.fixture
async def served(tmp_path) -> AsyncIterator[Served]:
    instance, server, task = await serve(tmp_path)
    try:
        yield instance
    finally:
        server.should_exit = True
        await task
