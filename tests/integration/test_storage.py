"""Exports and images live in the storage (`EXPORTD_STORAGE_DIR`), and the store names them relative to it."""

from __future__ import annotations

import zipfile

import pytest
from sqlalchemy import update

from exportd.domain.errors import ExportGone
from exportd.domain.requests import ExportRequest
from exportd.runtime import Runtime
from exportd.store.tables import export_jobs
from tests.conftest import make_world


async def test_exports_and_images_go_to_the_storage_folder_and_the_store_keeps_relative_keys(tmp_path):
    shared = tmp_path / "shared"
    world = await make_world(tmp_path, images=2, storage_dir=shared)
    try:
        job, _ = await world.services.start_export(world.user_id, world.project_id, ExportRequest())
        final = await world.settled(job.id)
        images = await world.runtime.store.query(lambda repo: repo.images_of(world.project_id))

        assert final.status == "completed"
        assert final.file_path == f"exports/{job.id}.1/{final.file_name}"  # relative: any node resolves it
        assert (shared / final.file_path).is_file()
        assert all(not image.storage_key.startswith("/") and (shared / image.storage_key).is_file()
                   for image in images)
        data_dir = world.runtime.settings.data_dir
        assert not (data_dir / "storage").exists() and not (data_dir / "exports").exists()
        download = await world.services.open_download(world.user_id, world.project_id, job.id)
        with download.handle:
            assert download.size == (shared / final.file_path).stat().st_size
            assert zipfile.ZipFile(download.handle).testzip() is None

        await world.services.discard(world.user_id, world.project_id, job.id)
        assert not (shared / final.file_path).parent.exists()
    finally:
        await world.runtime.stop()


async def test_a_node_with_the_same_storage_folder_serves_an_export_another_node_wrote(tmp_path):
    world = await make_world(tmp_path, images=1, storage_dir=tmp_path / "shared")
    other = None
    try:
        job, _ = await world.services.start_export(world.user_id, world.project_id, ExportRequest())
        final = await world.settled(job.id)
        # another node: its own data folder (and key), the same database and storage folder
        other = Runtime(world.runtime.settings.model_copy(update={"data_dir": tmp_path / "other-node"}))

        download = await other.services.open_download(world.user_id, world.project_id, job.id)
        with download.handle:
            assert download.handle.read() == world.runtime.storage.path(final.file_path).read_bytes()
    finally:
        if other is not None:
            await other.store.close()
        await world.runtime.stop()


async def test_an_export_stored_with_an_absolute_path_by_an_older_version_is_still_served_and_discarded(world):
    job, _ = await world.services.start_export(world.user_id, world.project_id, ExportRequest())
    final = await world.settled(job.id)
    absolute = world.runtime.storage.path(final.file_path).resolve()

    def as_an_older_version_stored_it(repo):
        repo.conn.execute(update(export_jobs).where(export_jobs.c.id == job.id).values(file_path=str(absolute)))

    await world.runtime.store.apply(as_an_older_version_stored_it)
    download = await world.services.open_download(world.user_id, world.project_id, job.id)
    with download.handle:
        assert download.handle.read() == absolute.read_bytes()

    await world.services.discard(world.user_id, world.project_id, job.id)
    assert not absolute.parent.exists()
    with pytest.raises(ExportGone):
        await world.services.open_download(world.user_id, world.project_id, job.id)
