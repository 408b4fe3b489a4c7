"""A download whose job changes between the download's check and its stream never presents a
partial file as complete: it answers with nothing but an error, or streams the whole ZIP.

The interleavings are forced with the download's hooks: one right after the status check (the
file not yet opened), one with the file open and no byte sent yet.
"""

from __future__ import annotations

import io
import zipfile

import pytest

from tests.acceptance.support import App, assert_error, export_url, running, start, until_status

FAST = {"options": {"includeVisualizations": False, "annotationFormats": ["coco"], "metricsFormats": ["csv"]}}


async def completed(app: App) -> tuple[str, str, str, bytes]:
    """(token, project id, job id, the ZIP's bytes on disk) of a completed export."""
    _, token = await app.user("ada@example.com")
    project_id, _ = await app.project(token, images=2)
    async with app.client(token) as http:
        job_id = (await start(http, project_id, FAST))["id"]
        await until_status(http, project_id, job_id, "completed")
    await app.settled(job_id)
    job = await app.stored_job(job_id)
    return token, project_id, job_id, app.runtime.storage.path(job.file_path).read_bytes()


async def force_status(app: App, job_id: str, status: str) -> None:
    """Write a status behind the state machine's back (a completed job never changes status on its own)."""
    await app.runtime.store.apply(lambda repo: repo.conn.exec_driver_sql(
        f"UPDATE export_jobs SET status = '{status}' WHERE id = '{job_id}'"))


async def discard(app: App, token: str, project_id: str, job_id: str) -> None:
    async with app.client(token) as http:
        assert (await http.delete(export_url(project_id, job_id))).status_code == 204


@pytest.mark.parametrize("status", ["cancelled", "processing", "failed"])
async def test_a_status_that_turns_between_the_check_and_the_open_sends_an_error_and_no_file(tmp_path, status):
    async with running(tmp_path) as app:
        token, project_id, job_id, _ = await completed(app)

        async def turn(checked_job: str) -> None:
            await force_status(app, checked_job, status)
        app.runtime.services.hooks.after_download_check = turn
        async with app.client(token) as http:
            response = await http.get(export_url(project_id, job_id, "download"))

    expected = (410, "GONE") if status == "cancelled" else (409, "CONFLICT")
    assert_error(response, *expected)
    assert response.headers["content-type"].startswith("application/json")
    assert not response.content.startswith(b"PK")


async def test_a_discard_between_the_check_and_the_open_is_410_and_sends_no_file(tmp_path):
    async with running(tmp_path) as app:
        token, project_id, job_id, _ = await completed(app)

        async def discard_it(checked_job: str) -> None:
            await discard(app, token, project_id, checked_job)
        app.runtime.services.hooks.after_download_check = discard_it
        async with app.client(token) as http:
            response = await http.get(export_url(project_id, job_id, "download"))

    assert_error(response, 410, "GONE")


@pytest.mark.parametrize("change", ["cancelled in the store", "discarded, file deleted"])
async def test_a_change_once_the_file_is_open_still_streams_the_whole_zip_and_only_it(tmp_path, change):
    async with running(tmp_path) as app:
        token, project_id, job_id, on_disk = await completed(app)

        async def change_it(streamed_job: str) -> None:
            if change == "cancelled in the store":
                await force_status(app, streamed_job, "cancelled")
            else:
                await discard(app, token, project_id, streamed_job)
        app.runtime.services.hooks.before_download_stream = change_it
        async with app.client(token) as http:
            response = await http.get(export_url(project_id, job_id, "download"))
            after = await http.get(export_url(project_id, job_id, "download"))

    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content) == len(on_disk)
    assert response.content == on_disk
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.testzip() is None
    assert_error(after, 410, "GONE")  # and from then on, nothing more is sent
