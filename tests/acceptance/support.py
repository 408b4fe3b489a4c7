"""What the acceptance tests share: a served app with its gates, timed sockets, and log checks.

Everything here drives the real app over loopback (httpx and python-socketio);
the only peeks behind the API are waiting for a worker to let go of a job and
reading a job whose project is no longer visible to anyone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import socketio

from exportd.engine.hooks import EngineHooks
from exportd.testing import Gate, ItemGate, test_settings
from tests.conftest import Served, eventually, serve

TERMINAL = {"export:completed", "export:failed", "export:cancelled"}
EVENT_FIELDS = {"jobId", "projectId", "userId", "seq", "status", "timestamp"}
SECRET = test_settings("unused").secret_key


class HeldItems(ItemGate):
    """An ItemGate that can be opened for good, so no pipeline thread outlives the test waiting on it.

    Every attempt of a job is held at its k-th item, a retry too, and a held item waits until the test
    releases it (or opens the gate at teardown), not for a fixed time: a job a test holds does not
    complete behind its back, however slow the machine."""

    HOLD_SECONDS = 300.0  #: only so a pipeline thread cannot outlive a broken teardown for ever

    def __init__(self, after: int) -> None:
        super().__init__(after)
        self.opened = False
        self._known: set[str] = set()
        self._per_attempt: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()  # the pipeline threads call in; the test opens from the loop

    def __call__(self, job_id: str, attempt: int) -> None:
        with self._lock:
            self.items[job_id] += 1
            if self.opened:
                return
            self._known.add(job_id)
            count = self._per_attempt[job_id, attempt] = self._per_attempt.get((job_id, attempt), 0) + 1
        if count == self.after:
            self._arrived[job_id].set()
            self._open[job_id].wait(self.HOLD_SECONDS)

    def open_all(self) -> None:
        with self._lock:
            self.opened = True
            known = list(self._known)
        for job_id in known:
            self.release(job_id)


class HeldCompletions(Gate):
    """A Gate (before completion) that can be opened for good at teardown."""

    def __init__(self) -> None:
        super().__init__()
        self.opened = False
        self.seen: list[str] = []

    async def __call__(self, job_id: str, attempt: int) -> None:
        self.seen.append(job_id)
        if self.opened:
            self.release(job_id)
        await super().__call__(job_id, attempt)

    def open_all(self) -> None:
        self.opened = True
        for job_id in self.seen:
            self.release(job_id)


@dataclass
class App:
    """A served app, its gates, and what to close at the end."""

    served: Served
    items: HeldItems | None = None
    completions: HeldCompletions | None = None
    sockets: list[socketio.AsyncClient] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.served.url

    @property
    def runtime(self):
        return self.served.runtime

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30, **kwargs)

    async def user(self, email: str, password: str = "correct horse") -> tuple[str, str]:
        return await self.served.user(email, password)

    async def project(self, token: str, images: int = 2, name: str = "Spheroids") -> tuple[str, list[str]]:
        return await self.served.project(token, images=images, name=name)

    async def socket(self, token: str | None = None, **connect: Any) -> TimedSocket:
        sock = TimedSocket()
        self.sockets.append(sock.client)
        auth = {"token": token} if token is not None else None
        await sock.client.connect(self.url, auth=auth, transports=["websocket"], wait_timeout=10, **connect)
        return sock

    async def settled(self, job_id: str, timeout: float = 10.0) -> None:
        """Wait until the job is terminal in the store and no worker holds it, and its events went out."""
        async def idle() -> bool:
            job = await self.runtime.store.query(lambda repo: repo.job(job_id))
            return job.status in ("completed", "failed", "cancelled") and job_id not in self.runtime.engine.running
        await eventually(idle, timeout, message=f"job {job_id} to settle")
        await self.runtime.relay.drain()

    async def stored_job(self, job_id: str):
        return await self.runtime.store.query(lambda repo: repo.job(job_id))

    async def stored_log(self, job_id: str) -> list[dict[str, Any]]:
        return await self.runtime.store.query(lambda repo: repo.events_after(job_id, 0))

    async def completed_export(self, email: str = "ada@example.com") -> tuple[str, str, str, list[dict[str, Any]]]:
        """A new user's export of a one-image project, run to the end: (token, project id, job id, its log)."""
        _, token = await self.user(email)
        project_id, _ = await self.project(token, images=1)
        async with self.client(token) as http:
            job_id = (await start(http, project_id))["id"]
            await until_status(http, project_id, job_id, "completed")
            await self.settled(job_id)
            return token, project_id, job_id, await log(http, project_id, job_id)


@asynccontextmanager
async def running(tmp_path, *, items: int | None = None, hold_completion: bool = False,
                  **overrides: Any) -> AsyncIterator[App]:
    """Serve the app; `items=k` holds every job after its k-th item, `hold_completion` before completing."""
    held_items = HeldItems(items) if items is not None else None
    held_completions = HeldCompletions() if hold_completion else None
    hooks = EngineHooks(on_item=held_items) if held_items else EngineHooks()
    if held_completions is not None:
        hooks.before_complete = held_completions
    served, server, task = await serve(tmp_path, hooks=hooks, **overrides)
    app = App(served, held_items, held_completions)
    try:
        yield app
    finally:
        if held_items is not None:
            held_items.open_all()
        if held_completions is not None:
            held_completions.open_all()
        for client in app.sockets:
            if client.connected:
                await client.disconnect()
        server.should_exit = True
        await task


class TimedSocket:
    """A Socket.IO client that keeps every export event it receives, with the monotonic time it arrived."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.received: list[tuple[str, dict[str, Any], float]] = []

        @self.client.on("*")
        async def _any(event: str, data: Any) -> None:
            self.received.append((event, data, time.monotonic()))

    def payloads(self, job_id: str | None = None) -> list[dict[str, Any]]:
        return [data for _, data, _ in self.received if job_id is None or data.get("jobId") == job_id]

    def events(self, job_id: str) -> list[str]:
        return [event for event, data, _ in self.received if data.get("jobId") == job_id]

    async def wait_for(self, job_id: str, event: str, timeout: float = 10.0) -> tuple[dict[str, Any], float]:
        """The first `event` of `job_id` (already received or still to come) and when it arrived."""
        def found():
            return next(((data, at) for name, data, at in self.received
                         if name == event and data.get("jobId") == job_id), None)
        return await eventually(found, timeout, interval=0.002, message=f"{event} of {job_id}")

    async def wait_terminal(self, job_id: str, timeout: float = 10.0) -> dict[str, Any]:
        def found():
            return next((data for name, data, _ in self.received
                         if name in TERMINAL and data.get("jobId") == job_id), None)
        return await eventually(found, timeout, message=f"a terminal event of {job_id}")

    async def call(self, event: str, data: Any = None) -> Any:
        return await self.client.call(event, data, timeout=10)

    async def disconnect(self) -> None:
        await self.client.disconnect()


# -- HTTP helpers ---------------------------------------------------------------------------------------------------

def export_url(project_id: str, job_id: str | None = None, tail: str = "") -> str:
    base = f"/api/projects/{project_id}/export"
    return base + (f"/{job_id}" if job_id else "") + (f"/{tail}" if tail else "")


async def start(http: httpx.AsyncClient, project_id: str, body: dict | None = None, **kwargs: Any) -> dict:
    response = await http.post(export_url(project_id), json=body if body is not None else {}, **kwargs)
    assert response.status_code == 202, response.text
    return response.json()


async def status(http: httpx.AsyncClient, project_id: str, job_id: str) -> dict:
    response = await http.get(export_url(project_id, job_id, "status"))
    assert response.status_code == 200, response.text
    return response.json()


async def log(http: httpx.AsyncClient, project_id: str, job_id: str, after: int = 0) -> list[dict]:
    response = await http.get(export_url(project_id, job_id, "events"), params={"after": after})
    assert response.status_code == 200, response.text
    return response.json()["events"]


async def until_status(http: httpx.AsyncClient, project_id: str, job_id: str, *wanted: str,
                       timeout: float = 10.0) -> dict:
    async def reached():
        job = await status(http, project_id, job_id)
        return job if job["status"] in wanted else None
    return await eventually(reached, timeout, message=f"job {job_id} to be {' or '.join(wanted)}")


async def held_at_first_item(app: App, http: httpx.AsyncClient, project_id: str, job_id: str) -> dict:
    """Wait until the job is held after its first item and its progress for that item is stored: from
    then on nothing about it changes until the gate opens. Returns the job as it stands."""
    await app.items.reached(job_id)

    async def quiet():
        job = await status(http, project_id, job_id)
        return job if job["status"] == "processing" and job["stage"] is not None else None
    return await eventually(quiet, message=f"job {job_id} to record its first item")


def assert_error(response: httpx.Response, status_code: int, code: str) -> dict:
    """The contract's error shape, with this status and code."""
    assert response.status_code == status_code, (response.status_code, response.text)
    body = response.json()
    assert body["success"] is False, body
    assert body["code"] == code, body
    assert isinstance(body["error"], str) and body["error"], body
    return body


def assert_log_is_sound(events: list[dict[str, Any]]) -> None:
    """seq runs 1..n with no gap; exactly one terminal event, and it is the last; each payload is complete."""
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), [e["seq"] for e in events]
    terminal = [e for e in events if e["type"] in TERMINAL]
    assert len(terminal) == 1, [e["type"] for e in events]
    assert events[-1] is terminal[0], [e["type"] for e in events]
    for event in events:
        assert EVENT_FIELDS <= event.keys(), (event["type"], EVENT_FIELDS - event.keys())


def access_token(user_id: str, *, secret: str = SECRET, expires_in: float = 3600) -> str:
    """An access token signed like the server's: expired when `expires_in` < 0, forged with another secret."""
    now = datetime.now(UTC)
    return jwt.encode({"sub": user_id, "typ": "access", "iat": now - timedelta(hours=2),
                       "exp": now + timedelta(seconds=expires_in)}, secret, algorithm="HS256")
