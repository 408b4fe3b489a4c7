"""A full or read-only disk and a full database: 503 in the error shape, nothing half-kept, not ready (DESIGN §3).

The faults are real where the machine allows it without privileges: SQLite is
filled up to a page limit (``PRAGMA max_page_count``) and answers "database or
disk is full" itself. A full or read-only disk is simulated at the one place
exportd writes files (``exportd.storage.write_file``), with the errno the kernel
would give.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

import exportd.storage
from exportd.domain.errors import StoreUnavailable
from exportd.store.repository import Repository
from exportd.synthetic import synthetic_project
from tests.acceptance.support import assert_error, export_url, running, start, until_status


def failing_under(root: Path, code: int):
    """`write_file` as it behaves when the file system holding `root` is full (ENOSPC) or read-only (EROFS)."""
    genuine = exportd.storage.write_file

    def write_file(path: Path, data: bytes, *, sync: bool = False) -> None:
        if Path(path).resolve().is_relative_to(root.resolve()):
            raise OSError(code, errno.errorcode[code] if code not in (errno.ENOSPC, errno.EROFS) else
                          {errno.ENOSPC: "No space left on device", errno.EROFS: "Read-only file system"}[code],
                          str(path))
        genuine(path, data, sync=sync)
    return write_file


def image_upload(count: int = 1, seed: int = 5) -> dict:
    files, segmentation = [], {}
    for name, png, polygons in synthetic_project(count=count, seed=seed):
        files.append(("files", (name, png, "image/png")))
        segmentation[name] = polygons
    return {"files": files, "data": {"segmentation": json.dumps(segmentation)}}


def stored_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def assert_unavailable(response) -> dict:
    body = assert_error(response, 503, "SERVICE_UNAVAILABLE")
    assert int(response.headers["retry-after"]) > 0
    assert body["retryAfter"] == int(response.headers["retry-after"])
    assert response.headers.get("connection") != "close"  # the client keeps its connection
    assert "/" not in body["error"] and "Errno" not in body["error"], body  # no path, no raw exception text
    return body


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
async def test_an_upload_to_full_or_read_only_storage_is_a_503_that_keeps_nothing_and_readiness_follows(
        tmp_path, monkeypatch, code):
    async with running(tmp_path) as app:
        _, token = await app.user("ada@example.com")
        project_id, _ = await app.project(token, images=0)
        storage = app.runtime.storage.root
        before = stored_files(storage)
        async with app.client(token) as http:
            monkeypatch.setattr(exportd.storage, "write_file", failing_under(storage, code))
            refused = await http.post(f"/api/projects/{project_id}/images", **image_upload(2))
            left = stored_files(storage)
            not_ready = await http.get("/api/readyz")
            still_served = await http.get(f"/api/projects/{project_id}")  # same client, same pool
            monkeypatch.undo()
            ready = await http.get("/api/readyz")
            accepted = await http.post(f"/api/projects/{project_id}/images", **image_upload(2))
            project = (await http.get(f"/api/projects/{project_id}")).json()

    assert_unavailable(refused)
    assert left == before  # no image file, no temporary file left behind
    assert still_served.status_code == 200 and still_served.json()["images"] == []
    assert_unavailable(not_ready)
    assert not_ready.json()["status"] == "unavailable"
    assert not_ready.json()["checks"]["storage"] != "ok" and not_ready.json()["checks"]["store"] == "ok"
    assert ready.status_code == 200 and ready.json()["status"] == "ready", ready.text
    assert accepted.status_code == 201, accepted.text
    assert [image["name"] for image in project["images"]] == ["spheroid_01.png", "spheroid_02.png"]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
async def test_an_export_start_while_the_export_folder_cannot_be_written_is_a_503_and_no_job(
        tmp_path, monkeypatch, code):
    async with running(tmp_path) as app:
        _, token = await app.user("ada@example.com")
        project_id, _ = await app.project(token, images=1)
        async with app.client(token) as http:
            app.runtime.services.write_probe._passed_at = float("-inf")  # the last probe is not trusted
            monkeypatch.setattr(exportd.storage, "write_file", failing_under(app.runtime.settings.exports_dir, code))
            refused = await http.post(export_url(project_id), json={})
            history = (await http.get(export_url(project_id, tail="history"))).json()["jobs"]
            monkeypatch.undo()
            job = await start(http, project_id)  # no active export was counted for the refused start
            done = await until_status(http, project_id, job["id"], "completed")

    assert_unavailable(refused)
    assert history == []
    assert done["available"] is True


async def fill_the_database(app) -> None:
    """Cap the SQLite file at its current size, then write until it is full: every later write needs room."""
    def cap(repo):
        pages = repo.conn.exec_driver_sql("PRAGMA page_count").scalar()
        repo.conn.exec_driver_sql(f"PRAGMA max_page_count = {pages}")
    await app.runtime.store.apply(cap)
    number = 0
    for size in (255, 32, 1):  # large rows first, then ever smaller ones into what is left
        while number < 10_000:
            number += 1
            try:
                await app.runtime.store.apply(lambda repo, n=number, k=size: repo.add_user(f"{n}@x", "!" * k))
            except StoreUnavailable:
                break
    assert number < 10_000, "the database never filled up"


async def test_a_full_sqlite_database_makes_uploads_and_starts_503_and_readiness_unavailable_until_it_has_room(
        tmp_path, monkeypatch):
    # A job's row is small and may still fit in a page its table has half free; here it needs a new page,
    # as it would once that page is used up: it first writes a row of an account's size.
    genuine_create_job = Repository.create_job

    def create_job_needing_a_page(repo, **fields):
        repo.probe_write()
        return genuine_create_job(repo, **fields)

    monkeypatch.setattr(Repository, "create_job", create_job_needing_a_page)
    async with running(tmp_path) as app:
        _, token = await app.user("ada@example.com")
        project_id, _ = await app.project(token, images=1)
        storage = app.runtime.storage.root
        before = stored_files(storage)
        async with app.client(token) as http:
            await fill_the_database(app)
            upload = await http.post(f"/api/projects/{project_id}/images", **image_upload(1, seed=9))
            left = stored_files(storage)
            start_refused = await http.post(export_url(project_id), json={})
            not_ready = await http.get("/api/readyz")
            still_read = await http.get(f"/api/projects/{project_id}")
            history = (await http.get(export_url(project_id, tail="history"))).json()["jobs"]

            await app.runtime.store.apply(
                lambda repo: repo.conn.exec_driver_sql("PRAGMA max_page_count = 1073741823"))
            ready = await http.get("/api/readyz")
            job = await start(http, project_id)
            done = await until_status(http, project_id, job["id"], "completed")

    for refused in (upload, start_refused):
        body = assert_unavailable(refused)
        assert "database" in body["error"]
    assert left == before  # the uploaded file was removed when its rows could not be written
    assert still_read.status_code == 200 and len(still_read.json()["images"]) == 1
    assert history == []
    assert_unavailable(not_ready)
    assert not_ready.json()["checks"]["store"] != "ok"
    assert ready.status_code == 200, ready.text
    assert done["available"] is True
