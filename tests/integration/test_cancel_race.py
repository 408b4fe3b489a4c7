"""The incident, forced: cancel and completion meet, in both orders, at the exact point of completion."""

from __future__ import annotations

import asyncio
import random

import pytest

from exportd.domain.errors import ExportGone, ExportNotCancellable
from exportd.domain.requests import ExportRequest
from exportd.engine.hooks import EngineHooks
from exportd.testing import Gate
from tests.conftest import export_files, export_folders, make_world

TERMINAL = {"export:completed", "export:failed", "export:cancelled"}


def assert_log_is_sound(events: list[dict]) -> None:
    """seq runs 1..n with no gap; exactly one terminal event, and it is the last."""
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    terminal = [e for e in events if e["type"] in TERMINAL]
    assert len(terminal) == 1, [e["type"] for e in events]
    assert events[-1] is terminal[0]


@pytest.fixture
async def gated(tmp_path):
    gate = Gate()
    world = await make_world(tmp_path, hooks=EngineHooks(before_complete=gate))
    try:
        yield world, gate
    finally:
        await world.runtime.stop()


async def test_cancel_that_commits_first_wins_over_completion(gated):
    world, gate = gated
    job, _ = await world.services.start_export(world.user_id, world.project_id, ExportRequest())
    await gate.reached(job.id)  # the ZIP is written; completion is next

    cancelled = await world.services.cancel(world.user_id, world.project_id, job.id)
    gate.release(job.id)
    final = await world.settled(job.id)

    assert cancelled.status == "cancelled"
    assert final.status == "cancelled" and final.file_path is None
    events = await world.stored_events(job.id)
    assert_log_is_sound(events)
    assert "export:completed" not in [e["type"] for e in events]
    assert "export:completed" not in [e["type"] for e in world.sink.by_job[job.id]]
    assert export_files(world.runtime.settings, job.id, "*.zip") == []
    assert export_folders(world.runtime.settings, job.id) == []
    with pytest.raises(ExportGone):
        await world.services.open_download(world.user_id, world.project_id, job.id)


async def test_completion_that_commits_first_makes_cancel_a_conflict(gated):
    world, gate = gated
    job, _ = await world.services.start_export(world.user_id, world.project_id, ExportRequest())
    await gate.reached(job.id)
    gate.release(job.id)
    final = await world.settled(job.id)
    assert final.status == "completed"

    with pytest.raises(ExportNotCancellable) as refused:
        await world.services.cancel(world.user_id, world.project_id, job.id)

    assert refused.value.details["job"].status == "completed"
    export = await world.services.open_download(world.user_id, world.project_id, job.id)
    export.handle.close()
    assert export.size == final.export_size > 0
    assert_log_is_sound(await world.stored_events(job.id))


@pytest.mark.slow
async def test_cancel_racing_completion_200_times_leaves_exactly_one_outcome(tmp_path):
    gate = Gate()
    world = await make_world(tmp_path, images=1, hooks=EngineHooks(before_complete=gate),
                             max_active_exports_per_user=1000)
    rng = random.Random(20261128)
    outcomes = {"completed": 0, "cancelled": 0}
    try:
        for round_ in range(200):
            job, _ = await world.services.start_export(world.user_id, world.project_id, ExportRequest())
            await gate.reached(job.id)
            cancel_first = round_ % 2 == 0

            async def cancel():
                await asyncio.sleep(rng.random() * 0.002)
                try:
                    await world.services.cancel(world.user_id, world.project_id, job.id)
                except ExportNotCancellable:
                    pass

            async def release():
                await asyncio.sleep(rng.random() * 0.002)
                gate.release(job.id)

            await asyncio.gather(*((cancel(), release()) if cancel_first else (release(), cancel())))
            final = await world.settled(job.id)
            outcomes[final.status] += 1

            events = await world.stored_events(job.id)
            assert_log_is_sound(events)
            assert events[-1]["type"] == f"export:{final.status}"
            assert world.sink.by_job[job.id] == events  # emitted exactly the stored log, in order
            zips = export_files(world.runtime.settings, job.id, "*.zip")
            if final.status == "cancelled":
                assert zips == [] and final.file_path is None
            else:
                assert zips == [world.runtime.storage.path(final.file_path)]
    finally:
        await world.runtime.stop()
    assert outcomes["completed"] > 0 and outcomes["cancelled"] > 0, outcomes
