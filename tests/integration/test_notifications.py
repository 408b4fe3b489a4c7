"""Commits reach other processes by NOTIFY; a listener that lost its connection comes back and catches up.

Progress events are announced with their COMMIT, in a transaction of their own, every other event inside its
transaction: a lost progress notification is filled from the store once the job's next event is heard, a
terminal event's notification cannot be lost, and a rolled-back transaction announces nothing.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from exportd.domain.jobs import CancelReason, EventType
from exportd.domain.requests import Credentials, ExportRequest
from exportd.runtime import Runtime
from exportd.store.announcing import AnnouncingConnection
from exportd.store.notifications import EVENTS_CHANNEL, STOPS_CHANNEL, asyncpg_dsn
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


def _progress(job_id: str, attempt: int, step: int):
    return lambda repo: repo.progress(job_id, attempt, progress=float(step), stage="images", current=step, total=100,
                                      message=f"image {step}: O'Brien's \\ \"žluťoučký\" {{$$}}", eta_seconds=None,
                                      lease_seconds=30)  # quotes, a backslash, Czech: sent intact with the COMMIT


async def _heard_on(settings, channel: str = EVENTS_CHANNEL) -> tuple[asyncpg.Connection, list[dict]]:
    """A plain LISTEN connection on `channel`, and the notifications it hears, decoded."""
    import json

    heard: list[dict] = []
    connection = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    await connection.add_listener(channel, lambda *args: heard.append(json.loads(args[-1])))
    return connection, heard


async def test_the_workers_hear_a_job_leave_its_attempt_but_not_a_new_job_arrive(node):
    """The stops channel: cancelled, failed, and queued again (a requeue); a new job's queued takes it from no
    attempt, and no worker needs to hear it."""
    runtime, _, other, user, project, _ = node
    probe, heard = await _heard_on(runtime.settings, STOPS_CHANNEL)
    try:
        job = await _job_of_another_process(other, user, project)
        first = await other.apply(lambda repo: repo.claim(job.id, lease_seconds=30))
        await other.apply(lambda repo: repo.requeue(job.id, first.attempt, lease_expired_before=None))
        second = await other.apply(lambda repo: repo.claim(job.id, lease_seconds=30))
        await other.apply(lambda repo: repo.fail(job.id, second.attempt, error="boom", code="EXPORT_FAILED",
                                                 retryable=False))
        cancelled = await _job_of_another_process(other, user, project)
        await other.apply(lambda repo: repo.cancel(cancelled.id, reason=CancelReason.USER_CANCELLED,
                                                   cancelled_by=user.id))
        await eventually(lambda: any(note["jobId"] == cancelled.id for note in heard),
                         message="the last job's cancel on the stops channel")
    finally:
        await probe.close()
    # notifications arrive in commit order: once the last is heard, every earlier one would have been
    assert [(note["jobId"], note["seq"], note["type"]) for note in heard] == [
        (job.id, 3, EventType.QUEUED.value), (job.id, 5, EventType.FAILED.value),
        (cancelled.id, 2, EventType.CANCELLED.value)]


async def test_every_event_is_announced_with_its_stored_payload_progress_after_its_commit(node):
    runtime, sink, other, user, project, _ = node
    probe, heard = await _heard_on(runtime.settings)
    try:
        job = await _job_of_another_process(other, user, project)
        claimed = await other.apply(lambda repo: repo.claim(job.id, lease_seconds=30))
        for step in (1, 2):
            await other.apply(_progress(job.id, claimed.attempt, step))
        await other.apply(lambda repo: repo.cancel(job.id, reason=CancelReason.USER_CANCELLED, cancelled_by=user.id))
        stored = await other.query(lambda repo: repo.events_after(job.id, 0))
        await eventually(lambda: len([n for n in heard if n["jobId"] == job.id]) == len(stored),
                         message="a notification of every event")
    finally:
        await probe.close()
    notes = [n for n in heard if n["jobId"] == job.id]  # in commit order, each once
    assert [note["payload"] for note in notes] == stored
    assert [(note["seq"], note["type"]) for note in notes] == [(p["seq"], p["type"]) for p in stored]
    await eventually(lambda: sink.by_job[job.id] == stored, message="the node to emit the whole log")


async def test_without_the_commits_announcements_only_progress_goes_unannounced(node, monkeypatch):
    """The trigger's share: every event but progress is announced inside its own transaction."""
    runtime, _, other, user, project, _ = node
    monkeypatch.setattr(AnnouncingConnection, "lose", lambda record: True)
    probe, heard = await _heard_on(runtime.settings)
    try:
        job = await _job_of_another_process(other, user, project)
        claimed = await other.apply(lambda repo: repo.claim(job.id, lease_seconds=30))
        await other.apply(_progress(job.id, claimed.attempt, 1))
        await other.apply(lambda repo: repo.fail(job.id, claimed.attempt, error="boom", code="WORKER_LOST",
                                                 retryable=False))
        stored = await other.query(lambda repo: repo.events_after(job.id, 0))
        await eventually(lambda: any(n["jobId"] == job.id and n["type"] == EventType.FAILED for n in heard),
                         message="the failure's notification")
    finally:
        await probe.close()
    assert [n["type"] for n in heard if n["jobId"] == job.id] == [
        p["type"] for p in stored if p["type"] != EventType.PROGRESS]
    assert EventType.PROGRESS in [p["type"] for p in stored]


async def test_a_progress_whose_notification_was_lost_reaches_the_sockets_in_order_once_the_next_event_is_heard(
        node, monkeypatch):
    runtime, sink, other, user, project, _ = node
    job = await _job_of_another_process(other, user, project)
    witness = await _job_of_another_process(other, user, project)
    claimed = await other.apply(lambda repo: repo.claim(job.id, lease_seconds=30))
    await other.apply(_progress(job.id, claimed.attempt, 1))
    lost = await other.query(lambda repo: repo.events_after(job.id, 0))
    monkeypatch.setattr(AnnouncingConnection, "lose",
                        lambda record: record.job_id == job.id and record.seq == lost[-1]["seq"] + 1)
    await other.apply(_progress(job.id, claimed.attempt, 2))  # its notification is lost
    monkeypatch.setattr(AnnouncingConnection, "lose", None)
    # Notifications arrive in the order they were sent: once the node emitted an event announced after the lost
    # one, the lost one is known not to have come.
    witness_claim = await other.apply(lambda repo: repo.claim(witness.id, lease_seconds=30))
    await other.apply(_progress(witness.id, witness_claim.attempt, 1))
    await eventually(lambda: [p["type"] for p in sink.by_job[witness.id]][-1:] == [EventType.PROGRESS],
                     message="the witness's progress")
    assert [p["seq"] for p in sink.by_job[job.id]] == [p["seq"] for p in lost]

    await other.apply(_progress(job.id, claimed.attempt, 3))  # the next event: the node fills the gap first
    stored = await other.query(lambda repo: repo.events_after(job.id, 0))
    await eventually(lambda: len(sink.by_job[job.id]) == len(stored), message="the gap filled")
    assert sink.by_job[job.id] == stored  # every event once, in seq order, the lost one included


async def test_a_terminal_event_reaches_the_sockets_with_every_progress_when_no_progress_was_announced(
        node, monkeypatch):
    runtime, sink, other, user, project, _ = node
    monkeypatch.setattr(AnnouncingConnection, "lose", lambda record: True)  # every progress notification lost
    job = await _job_of_another_process(other, user, project)
    claimed = await other.apply(lambda repo: repo.claim(job.id, lease_seconds=30))
    for step in (1, 2, 3):
        await other.apply(_progress(job.id, claimed.attempt, step))
    await other.apply(lambda repo: repo.cancel(job.id, reason=CancelReason.USER_CANCELLED, cancelled_by=user.id))
    stored = await other.query(lambda repo: repo.events_after(job.id, 0))

    await eventually(lambda: len(sink.by_job[job.id]) == len(stored), message="the whole log")
    assert sink.by_job[job.id] == stored
    assert sink.by_job[job.id][-1]["type"] == EventType.CANCELLED


async def test_a_rolled_back_progress_is_never_announced(node):
    runtime, sink, other, user, project, _ = node
    job = await _job_of_another_process(other, user, project)
    claimed = await other.apply(lambda repo: repo.claim(job.id, lease_seconds=30))
    probe, heard = await _heard_on(runtime.settings)
    try:
        def progress_then_fail(repo):
            repo.progress(job.id, claimed.attempt, progress=1.0, stage="images", current=1, total=100,
                          message="rolled back", eta_seconds=None, lease_seconds=30)
            raise RuntimeError("the transaction fails after writing its progress")

        with pytest.raises(RuntimeError):
            await other.apply(progress_then_fail)
        for step in (2, 3):  # the next transactions on the store's connections commit progress of their own
            await other.apply(_progress(job.id, claimed.attempt, step))
        stored = await other.query(lambda repo: repo.events_after(job.id, 0))
        await eventually(lambda: [n["seq"] for n in heard if n["jobId"] == job.id] == [stored[-2]["seq"],
                                                                                      stored[-1]["seq"]],
                         message="the two committed progress events, and only they")
    finally:
        await probe.close()
    assert [n["payload"] for n in heard if n["jobId"] == job.id] == stored[-2:]
    assert "rolled back" not in [p.get("message") for p in stored]
    await eventually(lambda: sink.by_job[job.id] == stored, message="the node to emit the whole log")


async def test_a_worker_relays_each_stop_to_its_children_and_asks_them_to_check_the_store_after_a_deaf_spell(node):
    """The one LISTEN connection of a worker process (`StopRelay`), and a child's inbox, both in this process."""
    import os

    from exportd.engine.stops import StopInbox, StopRelay, new_token

    runtime, _, other, user, project, _ = node
    token = new_token()
    stops: list[tuple[str, int, str]] = []
    resyncs: list[int] = []
    inbox = StopInbox(token, on_records=lambda records: stops.extend((r.job_id, r.seq, r.type) for r in records),
                      on_resync=lambda: resyncs.append(1))
    inbox.attach(asyncio.get_running_loop())
    relay = StopRelay(runtime.settings.database_url, token=token, children=lambda: [os.getpid(), 1],
                      check_seconds=0.2)
    await asyncio.to_thread(relay.start)
    try:
        job = await _job_of_another_process(other, user, project)
        claimed = await other.apply(lambda repo: repo.claim(job.id, lease_seconds=30))
        await other.apply(_progress(job.id, claimed.attempt, 1))
        await other.apply(lambda repo: repo.cancel(job.id, reason=CancelReason.USER_CANCELLED, cancelled_by=user.id))
        await eventually(lambda: stops, message="the cancel relayed to the child")
        assert stops == [(job.id, 4, EventType.CANCELLED)]  # only the stop: not the queued, started, progress
        assert relay.missed >= 1  # process 1 has no inbox: its datagram is dropped, the others still go

        admin = await asyncpg.connect(asyncpg_dsn(runtime.settings.database_url))
        try:
            await admin.execute("SELECT pg_terminate_backend($1)", relay.listener.backend_pid)
        finally:
            await admin.close()
        await eventually(lambda: resyncs, message="the child told to check the store after the reconnection")
        assert relay.listener.reconnects == 1
    finally:
        await asyncio.to_thread(relay.stop)
        inbox.close()
