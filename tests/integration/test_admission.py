"""Admission: the per-user active-export limit and Idempotency-Key hold under concurrency."""

from __future__ import annotations

import asyncio

import pytest

from exportd.domain.errors import IdempotencyKeyReused, ProjectNotFound, TooManyActiveExports, Unauthorized
from exportd.domain.requests import Credentials, ExportRequest
from exportd.engine.hooks import EngineHooks
from exportd.testing import Gate
from tests.conftest import make_world


async def test_the_store_under_test_is_the_one_the_backend_names(world, backend):
    assert ("postgresql" in world.runtime.settings.database_url) == (backend == "postgres")


@pytest.fixture
async def held(tmp_path):
    gate = Gate()
    world = await make_world(tmp_path, hooks=EngineHooks(after_claim=gate))
    try:
        yield world, gate
    finally:
        gate.open_all()
        await world.runtime.stop()


async def test_ten_concurrent_starts_admit_exactly_one_active_export(held):
    world, _ = held
    results = await asyncio.gather(
        *(world.services.start_export(world.user_id, world.project_id, ExportRequest()) for _ in range(10)),
        return_exceptions=True)

    admitted = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, TooManyActiveExports)]
    assert len(admitted) == 1 and len(refused) == 9
    assert refused[0].retry_after >= 1


async def test_the_limit_is_per_user(held):
    world, _ = held
    await world.services.start_export(world.user_id, world.project_id, ExportRequest())
    with pytest.raises(TooManyActiveExports):
        await world.services.start_export(world.user_id, world.project_id, ExportRequest())

    other = await world.services.register(Credentials(email="grace@example.com", password="correct horse"))
    project = await world.services.create_project(other.id, "Other")
    job, created = await world.services.start_export(other.id, project.id, ExportRequest())
    assert created and job.status == "pending"


async def test_concurrent_retries_with_one_idempotency_key_get_one_job(held):
    world, _ = held
    results = await asyncio.gather(*(
        world.services.start_export(world.user_id, world.project_id, ExportRequest(), idempotency_key="k-1")
        for _ in range(5)))

    assert len({job.id for job, _ in results}) == 1
    assert sum(created for _, created in results) == 1


async def test_an_idempotency_key_reused_for_another_request_is_refused(held):
    world, _ = held
    await world.services.start_export(world.user_id, world.project_id, ExportRequest(), idempotency_key="k-2")
    other = ExportRequest.model_validate({"options": {"annotationFormats": ["json"]}})
    with pytest.raises(IdempotencyKeyReused):
        await world.services.start_export(world.user_id, world.project_id, other, idempotency_key="k-2")


async def test_without_a_per_user_limit_concurrent_starts_are_all_admitted_each_with_its_queued_event(tmp_path):
    """`max_active_exports_per_user = 0`: no limit (on PostgreSQL the admission is then one statement, with no
    lock to take); who may export what, and the account's existence, are still checked."""
    world = await make_world(tmp_path, images=0, max_active_exports_per_user=0)
    try:
        await world.runtime.engine.stop()  # nothing runs: every admitted job stays active
        services = world.services
        results = await asyncio.gather(
            *(services.start_export(world.user_id, world.project_id, ExportRequest()) for _ in range(10)))
        assert len({job.id for job, _ in results}) == 10 and all(new for _, new in results)
        logs = [await world.stored_events(job.id) for job, _ in results]
        assert all([event["type"] for event in log] == ["export:queued"] for log in logs)
        # each counts the pending jobs committed before it (concurrent ones may not see each other)
        assert all(0 <= log[0]["position"] < 10 for log in logs)
        later, _ = await services.start_export(world.user_id, world.project_id, ExportRequest())
        assert (await world.stored_events(later.id))[0]["position"] == 10

        stranger = await services.register(Credentials(email="eve@example.com", password="correct horse"))
        with pytest.raises(ProjectNotFound):
            await services.start_export(stranger.id, world.project_id, ExportRequest())
        with pytest.raises(Unauthorized):
            await services.start_export("no-such-user", world.project_id, ExportRequest())
    finally:
        await world.runtime.stop()
