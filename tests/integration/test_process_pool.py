"""With a process pool, the CPU-heavy steps leave the server process, and a cancel still lands within one item."""

from __future__ import annotations

import asyncio
import os
import zipfile
from concurrent.futures.process import BrokenProcessPool

import pytest

from exportd.domain.requests import ExportRequest
from exportd.engine.hooks import EngineHooks
from exportd.testing import ItemGate
from tests.conftest import export_files, export_folders, make_world
from tests.integration.test_cancel_race import assert_log_is_sound

EVERYTHING = ExportRequest.model_validate({"options": {
    "includeVisualizations": True, "annotationFormats": ["coco", "yolo", "json"],
    "metricsFormats": ["excel", "csv", "json"]}})


async def test_an_export_through_the_process_pool_holds_every_format(tmp_path, backend):
    world = await make_world(tmp_path, images=3, export_processes=2)
    try:
        job, _ = await world.services.start_export(world.user_id, world.project_id, EVERYTHING)
        final = await world.settled(job.id, timeout=60)

        assert final.status == "completed", final.error
        names = set(zipfile.ZipFile(world.runtime.storage.path(final.file_path)).namelist())
        assert {"annotations/coco/annotations.json", "annotations/yolo/data.yaml", "metrics/metrics.xlsx",
                "metrics/metrics.csv", "metrics/metrics.json", "metadata.json"} <= names
        assert len([n for n in names if n.startswith("visualizations/") and n.endswith("_viz.png")]) == 3
        assert_log_is_sound(await world.stored_events(job.id))
    finally:
        await world.runtime.stop()


async def test_a_cancel_stops_a_pooled_export_within_one_item_and_leaves_no_file(tmp_path, backend):
    items = ItemGate(after=2)
    world = await make_world(tmp_path, images=3, export_processes=2, hooks=EngineHooks(on_item=items))
    try:
        job, _ = await world.services.start_export(world.user_id, world.project_id, EVERYTHING)
        await items.reached(job.id, timeout=60)
        await world.services.cancel(world.user_id, world.project_id, job.id)
        items.release(job.id)
        final = await world.settled(job.id, timeout=60)

        assert final.status == "cancelled"
        assert items.items[job.id] == 2
        assert export_files(world.runtime.settings, job.id) == []
        assert export_folders(world.runtime.settings, job.id) == []
    finally:
        await world.runtime.stop()


async def test_export_threads_and_pool_workers_run_niced_while_the_event_loop_keeps_its_priority(tmp_path, backend):
    base = os.nice(0)  # this thread's niceness; the server's event loop runs in it
    seen: list[int] = []
    world = await make_world(tmp_path, images=2, export_processes=1, export_nice=7,
                             hooks=EngineHooks(on_item=lambda job_id, attempt: seen.append(os.nice(0))))
    try:
        job, _ = await world.services.start_export(world.user_id, world.project_id, EVERYTHING)
        final = await world.settled(job.id, timeout=60)
        assert final.status == "completed", final.error
        pool = world.runtime.engine._processes
        assert {pool.submit(os.nice, 0).result(timeout=30) for _ in range(4)} == {min(19, base + 7)}
        assert seen and set(seen) == {min(19, base + 7)}  # the pipeline thread
        assert os.nice(0) == base
    finally:
        await world.runtime.stop()


async def test_after_a_pool_process_died_the_next_export_runs_in_a_new_pool(tmp_path, backend):
    world = await make_world(tmp_path, images=2, export_processes=1)
    try:
        pool = world.runtime.engine.pool
        with pytest.raises(BrokenProcessPool):
            await asyncio.wrap_future(pool.submit(os._exit, 1))  # the process dies as an out-of-memory kill ends it
        job, _ = await world.services.start_export(world.user_id, world.project_id, EVERYTHING)
        final = await world.settled(job.id, timeout=60)

        assert final.status == "completed", final.error
        assert pool.replaced == 1
    finally:
        await world.runtime.stop()
