"""One clock: leases and the reaper judge by the store's clock, so nodes whose clocks disagree agree on leases."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from exportd.domain.requests import Credentials, ExportRequest
from exportd.engine.leases import Reaper
from exportd.store import repository
from exportd.store.migrate import upgrade
from exportd.store.uow import Store
from exportd.testing import test_settings


async def test_a_lease_taken_on_a_node_whose_clock_is_an_hour_behind_is_not_reaped_by_a_node_on_time(
        tmp_path, backend, monkeypatch):
    if backend == "sqlite":
        pytest.skip("embedded: one process, one clock (the machine's)")
    settings = test_settings(tmp_path / "data", lease_seconds=30).resolved()
    await upgrade(settings.database_url)
    store = Store(settings.database_url)
    try:
        from exportd.services import Services
        from exportd.storage import LocalStorage

        storage = LocalStorage(settings.storage_dir)
        services = Services(store, storage, settings)
        user = await services.register(Credentials(email="ada@example.com", password="correct horse"))
        project = await services.create_project(user.id, "Spheroids")
        job = await store.apply(lambda repo: repo.create_job(
            project_id=project.id, user_id=user.id, options=ExportRequest().options.to_json(),
            project_name="Spheroids"))

        on_time = repository.utcnow
        monkeypatch.setattr(repository, "utcnow", lambda: on_time() - timedelta(hours=1))  # the worker's node
        claimed = await store.apply(lambda repo: repo.claim(job.id, lease_seconds=settings.lease_seconds))
        monkeypatch.setattr(repository, "utcnow", on_time)  # the reaper's node

        assert claimed is not None
        assert claimed.lease_expires_at > on_time()  # the lease runs out 30 s from the database's now
        assert await Reaper(store, storage, settings).reap_expired_leases() == 0
        assert (await store.query(lambda repo: repo.job(job.id))).status == "processing"
    finally:
        await store.close()


@pytest.mark.parametrize("skew", [timedelta(hours=-1), timedelta(hours=1)], ids=["behind", "ahead"])
async def test_every_time_a_job_statement_stamps_is_the_database_s_whatever_the_node_s_clock_says(
        tmp_path, backend, monkeypatch, skew):
    """The transitions read the database's clock inside their own statements: a node whose clock is off
    by an hour still stamps, and sets leases from, the database's now."""
    if backend == "sqlite":
        pytest.skip("embedded: one process, one clock (the machine's)")
    settings = test_settings(tmp_path / "data", lease_seconds=30).resolved()
    await upgrade(settings.database_url)
    store = Store(settings.database_url)
    try:
        from exportd.services import Services
        from exportd.storage import LocalStorage

        services = Services(store, LocalStorage(settings.storage_dir), settings)
        user = await services.register(Credentials(email="ada@example.com", password="correct horse"))
        project = await services.create_project(user.id, "Spheroids")
        on_time = repository.utcnow
        monkeypatch.setattr(repository, "utcnow", lambda: on_time() + skew)  # this node's clock

        def new_job(repo):
            return repo.create_job(project_id=project.id, user_id=user.id,
                                   options=ExportRequest().options.to_json(), project_name="Spheroids")

        first, second = await store.apply(new_job), await store.apply(new_job)
        first = await store.apply(lambda repo: repo.claim(first.id, lease_seconds=30))
        second = await store.apply(lambda repo: repo.claim(second.id, lease_seconds=30))
        await store.apply(lambda repo: repo.progress(
            first.id, first.attempt, progress=10, stage="images", current=1, total=10, message="",
            eta_seconds=None, lease_seconds=300))
        progressed = await store.query(lambda repo: repo.job(first.id))
        await store.apply(lambda repo: repo.renew_lease(second.id, second.attempt, lease_seconds=600))
        renewed = await store.query(lambda repo: repo.job(second.id))
        cancelled = await services.cancel(user.id, project.id, first.id)
        completed = await store.apply(lambda repo: repo.complete(
            second.id, second.attempt, file_path="exports/x.zip", file_name="x.zip", export_size=1, warnings=[],
            processing_time=1.0))
        events = [event for job in (first, second)
                  for event in await store.query(lambda repo, job=job: repo.events_after(job.id, 0))]
        database_now = await store.query(lambda repo: repo.now())

        def near_now(moment, ahead=0.0):  # within a minute of the database's now (+ `ahead` seconds)
            assert abs((moment - database_now).total_seconds() - ahead) < 60, (moment, database_now)

        for job in (first, second, progressed, cancelled, completed):
            near_now(job.created_at)
            near_now(job.updated_at)
        near_now(first.started_at)
        near_now(first.lease_expires_at, ahead=30)  # claim
        near_now(progressed.lease_expires_at, ahead=300)  # progress renews the lease
        near_now(renewed.lease_expires_at, ahead=600)  # the renewal alone
        near_now(cancelled.cancelled_at)
        near_now(completed.completed_at)
        assert len(events) == 7
        for event in events:
            near_now(datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")))
    finally:
        await store.close()
