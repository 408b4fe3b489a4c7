"""Exports with different micrometre scales running at the same time, in the same worker threads and
process pool, each keep their own scale: lengths × s, areas × s², ratios unchanged."""

from __future__ import annotations

import json
import threading
import zipfile

import pytest

from exportd.domain.requests import ExportRequest
from exportd.engine.hooks import EngineHooks
from exportd.export.metrics import COLUMNS, IDENTITY, MEASURED
from tests.conftest import make_world

SCALES = (None, 0.5, 2.5)
LOCKSTEP_ITEMS = 4  #: the exports wait for each other after each of their images (of 4, then 2 more items)


class Lockstep:
    """An on_item hook: every export waits for the others after each of its first items, so their
    images go through the pipeline (and the process pool) interleaved, item for item."""

    def __init__(self, parties: int) -> None:
        self.barrier = threading.Barrier(parties, timeout=20)
        self.items: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, job_id: str, attempt: int) -> None:
        with self.lock:
            self.items[job_id] = self.items.get(job_id, 0) + 1
            count = self.items[job_id]
        if count <= LOCKSTEP_ITEMS:
            self.barrier.wait()


def metrics_of(path: str) -> dict:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("metrics/metrics.json"))


async def test_concurrent_exports_with_different_scales_keep_their_own_ratios(tmp_path):
    lockstep = Lockstep(len(SCALES))
    world = await make_world(tmp_path, images=4, hooks=EngineHooks(on_item=lockstep),
                             worker_concurrency=len(SCALES), max_active_exports_per_user=len(SCALES),
                             export_processes=2)
    try:
        jobs = []
        for scale in SCALES:
            request = ExportRequest.model_validate({"options": {
                "includeOriginalImages": False, "includeVisualizations": False, "includeDocumentation": False,
                "annotationFormats": [], "metricsFormats": ["json"], "pixelToMicrometerScale": scale}})
            job, _ = await world.services.start_export(world.user_id, world.project_id, request)
            jobs.append(job)
        finished = [await world.settled(job.id, timeout=60) for job in jobs]
    finally:
        await world.runtime.stop()

    assert [job.status for job in finished] == ["completed"] * len(SCALES)
    assert all(lockstep.items[job.id] > LOCKSTEP_ITEMS for job in jobs)  # they did run side by side
    plain, *scaled = (metrics_of(world.runtime.storage.path(job.file_path)) for job in finished)
    assert plain["polygons"]
    for scale, data in zip(SCALES[1:], scaled, strict=True):
        assert data["pixelToMicrometerScale"] == scale
        assert len(data["polygons"]) == len(plain["polygons"])
        for px, um in zip(plain["polygons"], data["polygons"], strict=True):
            for column in IDENTITY:
                assert um[column.key] == px[column.key]
            for column in MEASURED:
                factor = {"length": scale, "area": scale**2}.get(column.kind, 1.0)
                if column.kind == "ratio":
                    assert um[column.key] == px[column.key], column.title  # exactly: ratios have no unit
                else:
                    assert um[column.key] == pytest.approx(px[column.key] * factor, rel=1e-5), column.title
    assert {c.kind for c in COLUMNS} >= {"length", "area", "ratio"}
