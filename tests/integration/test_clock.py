"""One clock: leases and the reaper judge by the store's clock, so nodes whose clocks disagree agree on leases."""

from __future__ import annotations

from datetime import timedelta

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
