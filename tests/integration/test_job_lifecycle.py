"""Cancellation, fencing, time limits and crash recovery on the embedded engine (SQLite)."""

from __future__ import annotations

import asyncio
import gc
import itertools
import weakref
from pathlib import Path

import pytest

from exportd.domain.errors import ExportGone, JobNotFound
from exportd.domain.jobs import CancelReason
from exportd.domain.requests import Credentials, ExportRequest
from exportd.engine.hooks import EngineHooks
from exportd.engine.snapshot import load_snapshot
from exportd.runtime import Runtime
from exportd.store.migrate import upgrade
from exportd.store.repository import utcnow
from exportd.testing import Gate, ItemGate, test_settings
from tests.conftest import eventually, export_files, export_folders, make_world
from tests.integration.test_cancel_race import assert_log_is_sound


async def test_cancel_after_two_items_stops_within_one_item_and_leaves_no_file(tmp_path):
    items = ItemGate(after=2)
    world = await make_world(tmp_path, images=3, hooks=EngineHooks(on_item=items))
    try:
        job, _ = await world.services.start_export(world.user_id, world.project_id, ExportRequest())
        await items.reached(job.id)
        await world.services.cancel(world.user_id, world.project_id, job.id)
        items.release(job.id)
        final = await world.settled(job.id)

        assert final.status == "cancelled" and final.reason == "user_cancelled"
        assert items.items[job.id] == 2  # the pipeline stopped before its third item
        assert export_files(world.runtime.settings, job.id) == []
        assert export_folders(world.runtime.settings, job.id) == []  # the scratch folder too, not only its files
        types = [e["type"] for e in await world.stored_events(job.id)]
        assert types[-1] == "export:cancelled" and "export:completed" not in types
    finally:
        await world.runtime.stop()


async def test_a_cancelled_pending_job_never_starts(tmp_path):
    gate = Gate()
    world = await make_world(tmp_path, hooks=EngineHooks(after_claim=gate), worker_concurrency=1,
                             max_active_exports_per_user=5)
    try:
        busy, _ = await world.services.start_export(world.user_id, world.project_id, ExportRequest())
        await gate.reached(busy.id)  # the only worker is held
        queued, _ = await world.services.start_export(world.user_id, world.project_id, ExportRequest())

        cancelled = await world.services.cancel(world.user_id, world.project_id, queued.id)
        assert cancelled.status == "cancelled" and cancelled.previous_status == "pending"
        gate.release(busy.id)
        gate.release(queued.id)
        await world.settled(busy.id)
        final = await world.settled(queued.id)

        assert final.attempt == 0 and final.started_at is None
        assert [e["type"] for e in await world.stored_events(queued.id)] == ["export:queued", "export:cancelled"]
    finally:
        await world.runtime.stop()


async def test_five_concurrent_cancels_make_one_cancel_with_one_cancelled_at(tmp_path):
    items = ItemGate(after=1)
    world = await make_world(tmp_path, hooks=EngineHooks(on_item=items))
    try:
        job, _ = await world.services.start_export(world.user_id, world.project_id, ExportRequest())
        await items.reached(job.id)
        results = await asyncio.gather(
            *(world.services.cancel(world.user_id, world.project_id, job.id) for _ in range(5)))
        items.release(job.id)
        await world.settled(job.id)

        assert {row.cancelled_at for row in results} == {results[0].cancelled_at}
        events = await world.stored_events(job.id)
        assert [e["type"] for e in events].count("export:cancelled") == 1
        assert_log_is_sound(events)
        assert world.sink.by_job[job.id] == events
    finally:
        await world.runtime.stop()


async def test_progress_and_completion_after_a_cancel_store_and_emit_nothing(world):
    # We act as the job's worker, by hand, after the cancel committed.
    job, _ = await world.services.start_export(world.user_id, world.project_id, ExportRequest())
    final = await world.services.cancel(world.user_id, world.project_id, job.id)
    assert final.status == "cancelled"
    attempt = final.attempt
    before = await world.stored_events(job.id)

    def late_worker(repo):
        assert repo.progress(job.id, attempt, progress=50, stage="images", current=1, total=2,
                             message="late", eta_seconds=1, lease_seconds=30) is None
        assert repo.complete(job.id, attempt, file_path="/nowhere.zip", file_name="x.zip", export_size=1,
                             warnings=[], processing_time=0.5) is None
        assert repo.fail(job.id, attempt, error="late", code="X", retryable=False) is None
        return list(repo.events)

    assert await world.runtime.store.apply(late_worker) == []
    await world.runtime.relay.drain()

    assert await world.stored_events(job.id) == before
    assert (await world.job(job.id)).status == "cancelled"
    with pytest.raises(JobNotFound):  # the job is not visible under another project
        await world.services.cancel(world.user_id, "another-project", job.id)


async def test_a_fenced_off_attempt_can_change_nothing(world):
    """Attempt 1 lost its lease and the job went to attempt 2: attempt 1's statements all miss."""
    store = world.runtime.store
    await world.runtime.engine.stop()  # we play the workers ourselves
    job = await store.apply(lambda repo: repo.create_job(
        project_id=world.project_id, user_id=world.user_id, options=ExportRequest().options.to_json(),
        project_name="p"))
    first = await store.apply(lambda repo: repo.claim(job.id, lease_seconds=-1))  # its lease already ran out
    assert first.attempt == 1
    assert await store.apply(lambda repo: repo.requeue(job.id, 1, lease_expired_before=utcnow())) is not None
    second = await store.apply(lambda repo: repo.claim(job.id, lease_seconds=60))
    assert second.attempt == 2

    def stale_and_fresh_workers(repo):
        assert not repo.renew_lease(job.id, 1, lease_seconds=60)
        assert repo.progress(job.id, 1, progress=10, stage="images", current=1, total=9, message="",
                             eta_seconds=None, lease_seconds=30) is None
        assert repo.complete(job.id, 1, file_path="/stale.zip", file_name="s.zip", export_size=1,
                             warnings=[], processing_time=0.5) is None
        assert repo.fail(job.id, 1, error="stale", code="X", retryable=False) is None
        assert repo.complete(job.id, 2, file_path="/fresh.zip", file_name="f.zip", export_size=1,
                             warnings=[], processing_time=0.5) is not None

    await store.apply(stale_and_fresh_workers)
    final = await world.job(job.id)
    assert final.status == "completed" and final.file_path == "/fresh.zip"
    assert_log_is_sound(await world.stored_events(job.id))


async def test_a_job_past_its_time_limit_is_cancelled_with_reason_timeout(tmp_path):
    world = await make_world(tmp_path, images=3, job_timeout_seconds=0.3, pipeline_item_delay_seconds=0.05)
    try:
        job, _ = await world.services.start_export(world.user_id, world.project_id, ExportRequest())
        final = await world.settled(job.id)

        assert final.status == "cancelled" and final.reason == CancelReason.TIMEOUT
        assert final.cancelled_by is None and final.previous_status == "processing"
        assert export_files(world.runtime.settings, job.id) == []
        assert export_folders(world.runtime.settings, job.id) == []  # the scratch folder too, not only its files
        events = await world.stored_events(job.id)
        assert events[-1]["type"] == "export:cancelled" and events[-1]["reason"] == "timeout"
        assert_log_is_sound(events)
    finally:
        await world.runtime.stop()


async def test_an_export_that_raises_fails_with_its_code_and_leaves_no_folder(tmp_path):
    def broken_step(job_id: str, attempt: int) -> None:
        raise RuntimeError("disk on fire")

    world = await make_world(tmp_path, images=2, hooks=EngineHooks(on_item=broken_step))
    try:
        job, _ = await world.services.start_export(world.user_id, world.project_id, ExportRequest())
        final = await world.settled(job.id)

        assert final.status == "failed" and final.error_code == "EXPORT_ERROR" and final.retryable is False
        assert export_folders(world.runtime.settings, job.id) == []
        assert_log_is_sound(await world.stored_events(job.id))
    finally:
        await world.runtime.stop()


async def _orphaned_job(tmp_path, *, attempts_made: int, **overrides):
    """A job left `processing` with an expired lease, as a crashed server leaves it."""
    settings = test_settings(tmp_path / "data", **overrides).resolved()
    await upgrade(settings.database_url)
    seeding = Runtime(settings)
    services = seeding.services
    user = await services.register(Credentials(email="ada@example.com", password="correct horse"))
    project = await services.create_project(user.id, "Spheroids")
    job = await seeding.store.apply(lambda repo: repo.create_job(
        project_id=project.id, user_id=user.id, options=ExportRequest().options.to_json(),
        project_name="Spheroids"))
    for attempt in range(1, attempts_made + 1):
        def crash_attempt(repo, attempt=attempt):
            if attempt > 1:
                repo.requeue(job.id, attempt - 1, lease_expired_before=utcnow())
            return repo.claim(job.id, lease_seconds=-1)

        assert (await seeding.store.apply(crash_attempt)).attempt == attempt
    await seeding.store.close()
    return settings, job.id


async def test_a_job_orphaned_by_a_crash_is_retried_on_start_and_completes(tmp_path):
    settings, job_id = await _orphaned_job(tmp_path, attempts_made=1)
    runtime = Runtime(settings)
    await runtime.start()
    try:
        async def settled():
            job = await runtime.store.query(lambda repo: repo.job(job_id))
            return job if job.status == "completed" else None

        final = await eventually(settled, message="the orphaned job to complete")
        assert final.attempt == 2
        events = await runtime.store.query(lambda repo: repo.events_after(job_id, 0))
        assert [e["type"] for e in events] == [
            "export:queued", "export:started", "export:queued", "export:started", *(
                ["export:progress"] * (len(events) - 5)), "export:completed"]
        assert events[2]["attempt"] == 1
        assert_log_is_sound(events)
    finally:
        await runtime.stop()


async def test_a_crashed_attempts_folder_and_its_truncated_zip_are_removed_when_its_lease_is_reaped(tmp_path):
    settings, job_id = await _orphaned_job(tmp_path, attempts_made=1)
    crashed = settings.attempt_dir(job_id, 1)
    crashed.mkdir(parents=True)
    (crashed / "Spheroids_export.zip").write_bytes(b"PK\x03\x04 cut short by kill -9")
    runtime = Runtime(settings)
    await runtime.start()
    try:
        async def completed():
            job = await runtime.store.query(lambda repo: repo.job(job_id))
            return job if job.status == "completed" else None

        final = await eventually(completed, message="the orphaned job to complete")
        await eventually(lambda: job_id not in runtime.engine.running, message="the worker to let go")

        assert final.attempt == 2
        assert export_folders(settings, job_id) == [settings.attempt_dir(job_id, 2)]
        assert export_files(settings, job_id) == [runtime.storage.path(final.file_path)]
    finally:
        await runtime.stop()


async def test_the_janitor_removes_the_folders_of_attempts_that_did_not_publish(world):
    """A folder the reaper missed (a crash before a restart, a stale attempt's leftovers) goes at the next sweep."""
    settings = world.runtime.settings
    job, _ = await world.services.start_export(world.user_id, world.project_id, ExportRequest())
    final = await world.settled(job.id)
    published = world.runtime.storage.path(final.file_path).parent
    for attempt in (final.attempt + 1, final.attempt + 2):  # leftovers beside the published attempt
        folder = settings.attempt_dir(job.id, attempt)
        folder.mkdir()
        (folder / world.runtime.storage.path(final.file_path).name).write_bytes(b"truncated")

    assert await world.runtime.reaper.remove_orphan_folders() == 2
    assert export_folders(settings, job.id) == [published]
    assert export_files(settings, job.id) == [world.runtime.storage.path(final.file_path)]


async def test_a_job_whose_lease_expires_on_its_last_attempt_fails_as_retryable(tmp_path):
    settings, job_id = await _orphaned_job(tmp_path, attempts_made=3, max_attempts=3)
    runtime = Runtime(settings)
    await runtime.start()
    try:
        async def failed():
            job = await runtime.store.query(lambda repo: repo.job(job_id))
            return job if job.status == "failed" else None

        final = await eventually(failed, message="the orphaned job to fail")
        assert final.retryable is True and final.error_code == "WORKER_LOST"
        events = await runtime.store.query(lambda repo: repo.events_after(job_id, 0))
        assert events[-1]["type"] == "export:failed" and events[-1]["retryable"] is True
        assert_log_is_sound(events)
    finally:
        await runtime.stop()


async def test_deleting_the_project_cancels_its_running_export_as_system_cancelled(tmp_path):
    items = ItemGate(after=1)
    world = await make_world(tmp_path, hooks=EngineHooks(on_item=items))
    try:
        job, _ = await world.services.start_export(world.user_id, world.project_id, ExportRequest())
        await items.reached(job.id)
        await world.services.delete_project(world.user_id, world.project_id)
        items.release(job.id)
        await eventually(lambda: job.id not in world.runtime.engine.running, message="the worker to stop")
        final = await world.job(job.id)

        assert final.status == "cancelled" and final.reason == "system_cancelled"
        assert export_files(world.runtime.settings, job.id) == []
        assert export_folders(world.runtime.settings, job.id) == []  # the scratch folder too, not only its files
    finally:
        await world.runtime.stop()


async def test_a_stale_worker_that_wakes_after_its_job_moved_on_deletes_only_its_own_files(tmp_path):
    first_attempt_held, wake_first_attempt = asyncio.Event(), asyncio.Event()

    async def stall_first_attempt(job_id: str, attempt: int) -> None:
        if attempt == 1:  # attempt 1 has its ZIP, then stalls while its lease runs out
            first_attempt_held.set()
            await wake_first_attempt.wait()

    world = await make_world(tmp_path, images=1, hooks=EngineHooks(before_complete=stall_first_attempt),
                             lease_seconds=1.0)  # attempt 2 renews every 0.33 s: slack for a slow machine
    try:
        job, _ = await world.services.start_export(world.user_id, world.project_id, ExportRequest())
        await asyncio.wait_for(first_attempt_held.wait(), 10)

        async def completed_by_attempt_2():
            current = await world.job(job.id)
            return current.status == "completed" and current.attempt == 2

        await eventually(completed_by_attempt_2, message="the reaper to hand the job to attempt 2")
        first, second = (world.runtime.settings.attempt_dir(job.id, attempt) for attempt in (1, 2))
        # the stale attempt's finished ZIP is gone already (the janitor's sweep removes an attempt that did not
        # publish) or goes when it wakes
        wake_first_attempt.set()  # the stale worker wakes and tries to complete
        await eventually(lambda: not first.exists(), message="attempt 1's folder to go")
        await eventually(lambda: job.id not in world.runtime.engine.running, message="the workers to let go")
        final = await world.job(job.id)

        assert final.status == "completed" and final.attempt == 2
        assert world.runtime.storage.path(final.file_path).parent == second and world.runtime.storage.path(final.file_path).is_file()
        assert export_files(world.runtime.settings, job.id) == [world.runtime.storage.path(final.file_path)]
        events = await world.stored_events(job.id)
        assert_log_is_sound(events)
        assert [e["type"] for e in events if e["type"] != "export:progress"] == [
            "export:queued", "export:started", "export:queued", "export:started", "export:completed"]
    finally:
        await world.runtime.stop()


async def test_a_graceful_shutdown_hands_running_exports_back_and_the_next_start_finishes_them(tmp_path):
    items = ItemGate(after=1)
    world = await make_world(tmp_path, hooks=EngineHooks(on_item=items))
    job, _ = await world.services.start_export(world.user_id, world.project_id, ExportRequest())
    await items.reached(job.id)
    stopping = asyncio.create_task(world.runtime.stop())
    await eventually(lambda: world.runtime.engine._stopping, message="the engine to begin stopping")
    items.release(job.id)
    await stopping

    restarted = Runtime(world.runtime.settings)
    assert (await restarted.store.query(lambda repo: repo.job(job.id))).status == "pending"
    await restarted.start()
    try:
        async def completed():
            current = await restarted.store.query(lambda repo: repo.job(job.id))
            return current if current.status == "completed" else None

        final = await eventually(completed, message="the handed-back job to complete")
        assert final.attempt == 2
        assert not restarted.settings.attempt_dir(job.id, 1).exists()
        assert export_files(restarted.settings, job.id) == [restarted.storage.path(final.file_path)]
        assert_log_is_sound(await restarted.store.query(lambda repo: repo.events_after(job.id, 0)))
    finally:
        await restarted.stop()


async def test_a_long_export_that_reports_progress_keeps_its_lease(tmp_path):
    # every item takes 100 ms and progress is written at every wake-up, for longer than a lease; the reaper
    # sweeps every half lease. The lease is long enough that a pause of the machine under load (a gap between
    # two progress writes) does not outlast it, the export longer than two leases
    lease = 1.0
    world = await make_world(tmp_path, images=8, lease_seconds=lease, pipeline_item_delay_seconds=0.1,
                             store_check_seconds=5)  # only progress wakes the worker up
    try:
        job, _ = await world.services.start_export(world.user_id, world.project_id, ExportRequest())
        final = await world.settled(job.id, timeout=60)

        assert final.status == "completed" and final.attempt == 1  # never handed to a second attempt
        events = await world.stored_events(job.id)
        assert "export:queued" not in [e["type"] for e in events[1:]]
        assert (final.completed_at - final.started_at).total_seconds() > 2 * lease
    finally:
        await world.runtime.stop()


async def test_retention_deletes_the_zip_and_its_folder_and_the_download_is_gone(tmp_path):
    world = await make_world(tmp_path, retention_seconds=0.2)
    try:
        job, _ = await world.services.start_export(world.user_id, world.project_id, ExportRequest())
        final = await world.settled(job.id)
        assert final.status == "completed"
        assert export_files(world.runtime.settings, job.id) == [world.runtime.storage.path(final.file_path)]

        await eventually(world.runtime.reaper.expire_files, message="the export to expire")

        assert export_files(world.runtime.settings, job.id) == []
        assert export_folders(world.runtime.settings, job.id) == []  # the scratch folder too, not only its files
        assert not world.runtime.storage.path(final.file_path).parent.exists()
        assert (await world.job(job.id)).status == "completed"  # the record stays
        with pytest.raises(ExportGone):
            await world.services.open_download(world.user_id, world.project_id, job.id)
    finally:
        await world.runtime.stop()


async def test_the_janitor_removes_folders_no_job_needs_and_keeps_a_completed_export(tmp_path):
    items = ItemGate(after=1)
    world = await make_world(tmp_path, hooks=EngineHooks(on_item=items), max_active_exports_per_user=2)
    try:
        done, _ = await world.services.start_export(world.user_id, world.project_id, ExportRequest())
        cancelled, _ = await world.services.start_export(world.user_id, world.project_id, ExportRequest())
        await items.reached(done.id)
        await items.reached(cancelled.id)
        await world.services.cancel(world.user_id, world.project_id, cancelled.id)
        items.release(done.id)
        items.release(cancelled.id)
        done, cancelled = await world.settled(done.id), await world.settled(cancelled.id)
        assert (done.status, cancelled.status) == ("completed", "cancelled")
        settings = world.runtime.settings
        leftovers = [settings.attempt_dir(cancelled.id, 1), settings.attempt_dir(done.id, 7),
                     settings.attempt_dir("no-such-job", 1), settings.exports_dir / "no-such-job-either"]
        for folder in leftovers:  # a crashed worker's scratch, a stale attempt, unknown jobs (old layout too)
            folder.mkdir(exist_ok=True)
            (folder / "partial.zip").write_bytes(b"partial")
        live_folder = world.runtime.storage.path(done.file_path).parent

        removed = await world.runtime.reaper.remove_orphan_folders()

        # a completed job keeps only the folder it published, while its export is downloadable
        assert not settings.attempt_dir(cancelled.id, 1).exists()
        assert not settings.attempt_dir(done.id, 7).exists()
        assert not settings.attempt_dir("no-such-job", 1).exists()
        assert not (settings.exports_dir / "no-such-job-either").exists()
        assert live_folder.is_dir() and world.runtime.storage.path(done.file_path).is_file()
        assert removed == 4
    finally:
        await world.runtime.stop()


async def test_a_stopped_exports_snapshot_is_freed_at_once_not_by_a_later_full_collection(tmp_path, monkeypatch):
    from exportd.engine import runner

    points = {}

    async def remembering(store, storage, job):
        snapshot = await load_snapshot(store, storage, job)
        points[job.id] = weakref.ref(snapshot.images[0].polygons[0].points)  # arrays can be weakly referenced
        return snapshot

    monkeypatch.setattr(runner, "load_snapshot", remembering)
    items = ItemGate(after=1)
    world = await make_world(tmp_path, images=2, hooks=EngineHooks(on_item=items))
    gc.collect()
    gc.disable()  # only reference counting may free it now
    try:
        job, _ = await world.services.start_export(world.user_id, world.project_id, ExportRequest())
        await items.reached(job.id)
        await world.services.cancel(world.user_id, world.project_id, job.id)
        items.release(job.id)
        await world.settled(job.id)
        await eventually(lambda: job.id not in world.runtime.engine.running, message="the worker to let go")

        assert points[job.id]() is None  # no reference cycle kept the project alive
    finally:
        gc.enable()
        await world.runtime.stop()


async def test_a_snapshot_is_built_in_slices_with_the_event_loop_running_between_them(tmp_path, monkeypatch):
    from exportd.engine import snapshot as snapshots

    world = await make_world(tmp_path, images=3)
    try:
        job, _ = await world.services.start_export(world.user_id, world.project_id, ExportRequest())
        await world.settled(job.id)
        ticks, seen, converted = 0, [], []

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        def convert(rows, shapes):
            seen.append(ticks)
            converted.extend(rows)
            original_convert(rows, shapes)

        original_convert = snapshots._convert
        monkeypatch.setattr(snapshots, "SLICE", 2)
        monkeypatch.setattr(snapshots, "_convert", convert)
        running = asyncio.create_task(ticker())
        try:
            snapshot = await snapshots.load_snapshot(world.runtime.store, world.runtime.storage, await world.job(job.id))
        finally:
            running.cancel()

        polygons = sum(len(image.polygons) for image in snapshot.images)
        assert polygons == len(converted) > 4
        assert len(seen) == -(-polygons // 2)
        assert all(later > earlier for earlier, later in itertools.pairwise(seen))  # the loop ran between slices
    finally:
        await world.runtime.stop()
