"""Hand-offs between attempts: a retry starts again, a stale attempt changes nothing, a lease is renewed."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from sqlalchemy import update

from exportd.domain.jobs import CancelReason
from exportd.domain.requests import Credentials, ExportRequest
from exportd.engine.hooks import EngineHooks
from exportd.runtime import Runtime
from exportd.store.migrate import upgrade
from exportd.store.repository import utcnow
from exportd.store.tables import export_jobs
from exportd.synthetic import synthetic_project
from exportd.testing import Gate, ItemGate, test_settings
from tests.conftest import eventually, make_world
from tests.integration.test_cancel_race import assert_log_is_sound


async def _job_crashed_at(tmp_path, *, progress: float, **overrides):
    """A job whose attempt 1 reported `progress` and then died: `processing`, its lease run out."""
    settings = test_settings(tmp_path / "data", **overrides).resolved()
    await upgrade(settings.database_url)
    seeding = Runtime(settings)
    user = await seeding.services.register(Credentials(email="ada@example.com", password="correct horse"))
    project = await seeding.services.create_project(user.id, "Spheroids")
    from exportd.domain.requests import PolygonIn
    from exportd.services import Upload

    uploads, shapes = [], {}
    for name, png, polygons in synthetic_project(count=6, seed=1):
        uploads.append(Upload(name=name, data=png))
        shapes[name] = [PolygonIn.model_validate(p) for p in polygons]
    await seeding.services.add_images(user.id, project.id, uploads, shapes)
    job = await seeding.store.apply(lambda repo: repo.create_job(
        project_id=project.id, user_id=user.id, options=ExportRequest().options.to_json(), project_name="Spheroids"))

    def first_attempt_dies_late(repo):
        claimed = repo.claim(job.id, lease_seconds=60)
        assert repo.progress(job.id, claimed.attempt, progress=progress, stage="compression", current=19, total=20,
                             message="", eta_seconds=None, lease_seconds=-1) is not None  # then it died

    await seeding.store.apply(first_attempt_dies_late)
    await seeding.store.close()
    return settings, job.id


async def test_a_retried_attempt_starts_its_progress_again_and_keeps_its_lease(tmp_path):
    # attempt 1 died at 95 %; attempt 2 reports progress from 0 and must renew its 1 s lease meanwhile
    settings, job_id = await _job_crashed_at(
        tmp_path, progress=95.0, lease_seconds=1.0, max_attempts=2, pipeline_item_delay_seconds=0.08,
        store_check_seconds=5)  # only progress wakes the worker: the progress branch must renew the lease
    runtime = Runtime(settings)
    await runtime.start()
    try:
        async def settled():
            job = await runtime.store.query(lambda repo: repo.job(job_id))
            return job if job.status in ("completed", "failed", "cancelled") else None

        final = await eventually(settled, timeout=30, message="the retried job to finish")
        events = await runtime.store.query(lambda repo: repo.events_after(job_id, 0))

        assert (final.status, final.attempt, final.error_code) == ("completed", 2, None)
        types = [e["type"] for e in events]
        assert types[:5] == ["export:queued", "export:started", "export:progress", "export:queued", "export:started"]
        retried = [e for e in events[5:] if e["type"] == "export:progress"]
        assert retried and retried[0]["progress"] < 95  # the bar restarted
        assert (final.completed_at - final.started_at).total_seconds() > 1.0  # it outlived one lease
        assert_log_is_sound(events)
    finally:
        await runtime.stop()


async def test_a_refused_progress_write_does_not_count_as_a_lease_renewal(tmp_path):
    # the attempt's progress is put at 95 % as it starts, so every report it makes is refused (it stays ours)
    worlds = []

    async def ahead_of_the_pipeline(job_id: str, attempt: int) -> None:
        await worlds[0].runtime.store.apply(lambda repo: repo.progress(
            job_id, attempt, progress=95.0, stage="compression", current=1, total=1, message="", eta_seconds=None,
            lease_seconds=1.0))

    worlds.append(await make_world(
        tmp_path, images=6, hooks=EngineHooks(after_claim=ahead_of_the_pipeline), lease_seconds=1.0, max_attempts=1,
        pipeline_item_delay_seconds=0.08, store_check_seconds=5))  # only progress wakes the worker
    world = worlds[0]
    try:
        job, _ = await world.services.start_export(world.user_id, world.project_id, ExportRequest())
        final = await world.settled(job.id, timeout=30)

        assert (final.status, final.attempt, final.error_code) == ("completed", 1, None)
        assert (final.completed_at - final.started_at).total_seconds() > 1.0  # it outlived one lease
        events = await world.stored_events(job.id)
        progress = [e["progress"] for e in events if e["type"] == "export:progress"]
        assert progress[0] == 95.0 and min(progress) == 95.0  # the reports below it were refused
    finally:
        await world.runtime.stop()


async def test_a_requeued_job_is_back_at_zero_and_its_next_attempt_may_report_any_progress(world):
    store = world.runtime.store
    await world.runtime.engine.stop()  # we play the workers ourselves
    job = await store.apply(lambda repo: repo.create_job(
        project_id=world.project_id, user_id=world.user_id, options=ExportRequest().options.to_json(),
        project_name="p"))

    def attempt(repo, number, percent):
        return repo.progress(job.id, number, progress=percent, stage="images", current=1, total=2, message="",
                             eta_seconds=None, lease_seconds=-1)

    await store.apply(lambda repo: repo.claim(job.id, lease_seconds=60))
    assert await store.apply(lambda repo: attempt(repo, 1, 80.0)) is not None
    assert await store.apply(lambda repo: attempt(repo, 1, 40.0)) is None  # within an attempt, never backwards
    requeued = await store.apply(lambda repo: repo.requeue(job.id, 1, lease_expired_before=utcnow()))
    assert requeued.progress == 0
    await store.apply(lambda repo: repo.claim(job.id, lease_seconds=60))
    assert (await store.apply(lambda repo: attempt(repo, 2, 5.0))).progress == 5.0
    assert await store.apply(lambda repo: attempt(repo, 2, 4.0)) is None
    events = await world.stored_events(job.id)
    assert [(e["type"], e.get("progress")) for e in events if e["type"] == "export:progress"] == [
        ("export:progress", 80.0), ("export:progress", 5.0)]


async def test_a_time_limit_cancel_fenced_by_attempt_misses_the_requeued_job_and_the_next_attempt(world):
    store = world.runtime.store
    await world.runtime.engine.stop()  # we play the workers ourselves
    job = await store.apply(lambda repo: repo.create_job(
        project_id=world.project_id, user_id=world.user_id, options=ExportRequest().options.to_json(),
        project_name="p"))

    def time_limit_of(attempt):
        return lambda repo: repo.cancel(job.id, reason=CancelReason.TIMEOUT, cancelled_by=None, attempt=attempt)

    await store.apply(lambda repo: repo.claim(job.id, lease_seconds=-1))
    await store.apply(lambda repo: repo.requeue(job.id, 1, lease_expired_before=utcnow()))
    assert await store.apply(time_limit_of(1)) is None  # pending again, still numbered 1: no attempt holds it
    await store.apply(lambda repo: repo.claim(job.id, lease_seconds=60))
    assert await store.apply(time_limit_of(1)) is None
    assert (await store.apply(time_limit_of(2))).reason == CancelReason.TIMEOUT
    events = await world.stored_events(job.id)
    assert [e["type"] for e in events].count("export:cancelled") == 1
    assert_log_is_sound(events)


async def test_a_stale_attempts_own_time_limit_cannot_cancel_the_next_attempt(tmp_path):
    """Node A's attempt 1 stalls past its time limit while node B's reaper hands the job to attempt 2."""
    claimed, items = Gate(), ItemGate(after=1)
    node_a = await make_world(tmp_path, images=1, hooks=EngineHooks(after_claim=claimed, on_item=items),
                              job_timeout_seconds=0.3, lease_seconds=30, worker_concurrency=1)
    node_b = None
    try:
        job, _ = await node_a.services.start_export(node_a.user_id, node_a.project_id, ExportRequest())
        await claimed.reached(job.id)  # attempt 1 holds the job on node A, its worker stalled

        def lease_runs_out(repo):  # as if node A had been paused for longer than its lease
            repo.conn.execute(update(export_jobs).where(export_jobs.c.id == job.id)
                              .values(lease_expires_at=utcnow() - timedelta(seconds=1)))

        await node_a.runtime.store.apply(lease_runs_out)
        second_claimed = Gate()
        node_b = Runtime(test_settings(tmp_path / "data", lease_seconds=1.0, job_timeout_seconds=60),
                         hooks=EngineHooks(after_claim=second_claimed))
        await node_b.start()  # its reaper requeues the job and its worker claims attempt 2
        await second_claimed.reached(job.id)
        assert (await node_a.job(job.id)).attempt == 2

        stale = node_a.runtime.engine.running[job.id]
        await eventually(lambda: time.monotonic() - stale.started > 0.3, message="attempt 1's time limit to pass")
        claimed.release(job.id)  # node A wakes past attempt 1's time limit; its pipeline stops after item 1
        await items.reached(job.id)
        await eventually(stale.stop.is_set, message="attempt 1 to learn it lost the job")
        items.release(job.id)
        await eventually(lambda: job.id not in node_a.runtime.engine.running, message="attempt 1 to let go")
        assert (await node_a.job(job.id)).status == "processing"  # attempt 2's job was not cancelled

        second_claimed.release(job.id)

        async def completed():
            current = await node_a.job(job.id)
            return current if current.status == "completed" else None

        final = await eventually(completed, message="attempt 2 to complete")
        assert final.attempt == 2 and final.reason is None
        events = await node_a.stored_events(job.id)
        assert "export:cancelled" not in [e["type"] for e in events]
        assert_log_is_sound(events)
    finally:
        claimed.open_all()
        items.release(job.id)
        if node_b is not None:
            await node_b.stop()
        await node_a.runtime.stop()


async def test_a_stalled_export_renews_its_lease_without_a_gap_in_its_log(tmp_path):
    # the pipeline is held after item 1 for several leases: no progress is written, only renewals
    items = ItemGate(after=1)
    world = await make_world(tmp_path, images=2, hooks=EngineHooks(on_item=items), lease_seconds=1.0)
    try:
        job, _ = await world.services.start_export(world.user_id, world.project_id, ExportRequest())
        await items.reached(job.id)

        async def item_1_reported():
            current = await world.job(job.id)
            return current if current.progress > 0 else None

        held = await eventually(item_1_reported, message="item 1's progress")  # nothing more until released
        seen = [held.lease_expires_at]

        async def lease_renewed_three_times():
            current = await world.job(job.id)
            assert current.status == "processing" and current.attempt == 1, "the lease ran out"
            if current.lease_expires_at > seen[-1]:
                seen.append(current.lease_expires_at)
            return len(seen) > 3

        await eventually(lease_renewed_three_times, message="the lease to be renewed")  # held longer than a lease
        during = await world.job(job.id)
        assert during.seq == held.seq  # a renewal is no transition: no seq, no event
        items.release(job.id)
        final = await world.settled(job.id)

        assert final.status == "completed" and final.attempt == 1
        events = await world.stored_events(job.id)
        assert_log_is_sound(events)
        assert final.seq == len(events)
        assert world.sink.by_job[job.id] == events
    finally:
        items.release(job.id)
        await world.runtime.stop()


async def test_the_relay_fills_a_gap_when_a_worker_publishes_after_a_later_cancel(tmp_path, monkeypatch):
    """The worker commits progress (seq k) but publishes it only after the cancel (seq k+1) went out."""
    from exportd.domain.jobs import EventType
    from exportd.realtime.emitter import EventRelay

    held, release = asyncio.Event(), asyncio.Event()
    original = EventRelay.publish

    async def publish_first_progress_late(relay, records):
        if not held.is_set() and any(record.type == EventType.PROGRESS for record in records):
            held.set()
            await release.wait()
        await original(relay, records)

    monkeypatch.setattr(EventRelay, "publish", publish_first_progress_late)
    items = ItemGate(after=2)
    world = await make_world(tmp_path, images=2, hooks=EngineHooks(on_item=items))
    try:
        job, _ = await world.services.start_export(world.user_id, world.project_id, ExportRequest())
        await asyncio.wait_for(held.wait(), 10)  # a progress event is committed, not yet published
        await world.services.cancel(world.user_id, world.project_id, job.id)  # committed and published
        emitted = [payload["type"] for payload in world.sink.by_job[job.id]]
        release.set()
        items.release(job.id)
        await world.settled(job.id)

        stored = await world.stored_events(job.id)
        assert emitted[-2:] == ["export:progress", "export:cancelled"]  # filled from the store, in order
        assert world.sink.by_job[job.id] == stored  # and the late publication emitted nothing twice
        assert_log_is_sound(stored)
    finally:
        release.set()
        items.release(job.id)
        await world.runtime.stop()
