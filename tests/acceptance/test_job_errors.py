"""A failed export tells its user a stable code and a sentence; paths and exception text go to the log."""

from __future__ import annotations

import errno
import logging

from exportd.export import archive
from tests.acceptance.support import export_url, running, start, until_status


async def failed_export(app, caplog) -> tuple[dict, list[dict]]:
    _, token = await app.user("ada@example.com")
    project_id, _ = await app.project(token, images=1)
    async with app.client(token) as http:
        with caplog.at_level(logging.ERROR):
            job_id = (await start(http, project_id))["id"]
            failed = await until_status(http, project_id, job_id, "failed", "completed")
        events = (await http.get(export_url(project_id, job_id, "events"))).json()["events"]
    return failed, events


def assert_tells_no_internals(failed: dict, events: list[dict], tmp_path) -> dict:
    assert failed["status"] == "failed", failed
    event = events[-1]
    assert event["type"] == "export:failed"
    for text in (failed["error"], event["error"]):
        assert str(tmp_path) not in text and "/" not in text and "Errno" not in text, text
        assert text.endswith(".") and text[0].isupper()
    assert event["code"] == failed["errorCode"]
    return event


async def test_a_read_only_storage_fails_the_export_with_a_code_and_a_sentence(tmp_path, monkeypatch, caplog):
    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(self.path))

    monkeypatch.setattr(archive.ArchiveWriter, "write_bytes", read_only)
    async with running(tmp_path) as app:
        failed, events = await failed_export(app, caplog)
    data = assert_tells_no_internals(failed, events, tmp_path)
    assert failed["errorCode"] == "STORAGE_UNAVAILABLE" and data["retryable"] is True
    assert "Read-only file system" in caplog.text and str(tmp_path) in caplog.text  # the details, for the operator


async def test_any_other_failure_is_export_error_with_the_details_only_in_the_log(tmp_path, monkeypatch, caplog):
    def broken(self, *args, **kwargs):
        raise ValueError(f"unexpected state in {tmp_path}/exports/secret")

    monkeypatch.setattr(archive.ArchiveWriter, "write_bytes", broken)
    async with running(tmp_path) as app:
        failed, events = await failed_export(app, caplog)
    data = assert_tells_no_internals(failed, events, tmp_path)
    assert failed["errorCode"] == "EXPORT_ERROR" and data["retryable"] is False
    assert "unexpected state in" in caplog.text
