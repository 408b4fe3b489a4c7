"""Commits reach other processes by NOTIFY; a listener that lost its connection comes back and catches up."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from exportd.domain.jobs import CancelReason
from exportd.domain.requests import Credentials, ExportRequest
from exportd.runtime import Runtime
from exportd.store.notifications import asyncpg_dsn
from exportd.store.uow import Store
from exportd.testing import RecordingSink, test_settings
from tests.conftest import eventually


@pytest.fixture
async def node(tmp_path, backend):
    """An API node of a cluster (its broker unreachable: nothing here needs it) and a second store, the
    other processes of the cluster."""
    if backend == "sqlite":
        pytest.skip("NOTIFY is PostgreSQL's: the embedded shape hears only itself")
    settings = test_settings(tmp_path / "data", broker_url="redis://127.0.0.1:1/0", listener_check_seconds=0.2)
    gate = asyncio.Event()
    gate.set()
    connections = 0

    async def connect(dsn, timeout):
        nonlocal connections
        connections += 1
        await gate.wait()  # a test closes the gate to hold a reconnection
        return await asyncpg.connect(dsn, timeout=timeout)

    runtime = Runtime(settings)
    sink = RecordingSink()
    runtime.relay._sink = sink
    runtime.listener._connect = connect
    await runtime.start()
    other = Store(runtime.settings.database_url)
    user = await runtime.services.register(Credentials(email="ada@example.com", password="correct horse"))
    project = await runtime.services.create_project(user.id, "Spheroids")
    try:
        yield runtime, sink, other, user, project, gate
    finally:
        await other.close()
        await runtime.stop()


async def _job_of_another_process(other: Store, user, project):
    return await other.apply(lambda repo: repo.create_job(
        project_id=project.id, user_id=user.id, options=ExportRequest().options.to_json(), project_name="P"))


async def test_an_event_committed_by_another_process_reaches_this_nodes_sockets_once_in_order(node):
    _, sink, other, user, project, _ = node
    job = await _job_of_another_process(other, user, project)
    await other.apply(lambda repo: repo.claim(job.id, lease_seconds=30))
    await other.apply(lambda repo: repo.cancel(job.id, reason=CancelReason.USER_CANCELLED, cancelled_by=user.id))

    stored = await other.query(lambda repo: repo.events_after(job.id, 0))
    await eventually(lambda: len(sink.by_job[job.id]) == 3, message="the three events to be emitted")
    assert sink.by_job[job.id] == stored
    assert [rooms for _, payload, rooms in sink.emitted if payload["jobId"] == job.id] == [(user.id,)] * 3


async def test_a_listener_whose_connection_died_reconnects_and_emits_what_committed_while_it_was_deaf(node):
    runtime, sink, other, user, project, gate = node
    listener = runtime.listener
    job = await _job_of_another_process(other, user, project)
    await eventually(lambda: len(sink.by_job[job.id]) == 1, message="the queued event")

    gate.clear()  # the next connection waits: the listener stays deaf until the test says
    admin = await asyncpg.connect(asyncpg_dsn(runtime.settings.database_url))
    try:
        await admin.execute("SELECT pg_terminate_backend($1)", listener.backend_pid)
    finally:
        await admin.close()
    await eventually(lambda: not listener.connected.is_set(), message="the listener to notice")
    await other.apply(lambda repo: repo.claim(job.id, lease_seconds=30))  # committed while nobody listens
    await other.apply(lambda repo: repo.cancel(job.id, reason=CancelReason.USER_CANCELLED, cancelled_by=user.id))
    assert len(sink.by_job[job.id]) == 1
    gate.set()

    await eventually(lambda: listener.connected.is_set() and listener.reconnects == 1, message="a reconnection")
    stored = await other.query(lambda repo: repo.events_after(job.id, 0))
    await eventually(lambda: len(sink.by_job[job.id]) == 3, message="the catch-up from the store")
    assert sink.by_job[job.id] == stored  # each once, in seq order
