"""The disk fills up, or turns read-only, in the middle of an export.

The full disk is real: the export folder is a small tmpfs, filled to the last byte while the export
is held after its first item (the test skips where mounting is not permitted). A read-only remount
is refused while the export's ZIP is open for writing, so the read-only disk is simulated at the
export's next ZIP entry and at the readiness probe, with the errno the kernel gives (EROFS).

Either way: the job ends `failed` with the stable code STORAGE_UNAVAILABLE and a sentence (no path,
no exception text), its log is sound, no half-written file or folder stays, no job is stuck, and the
server is ready again, and exports, once the fault clears.
"""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import exportd.storage
from exportd.export import archive
from tests.acceptance.support import (
    assert_log_is_sound,
    export_url,
    held_at_first_item,
    log,
    running,
    start,
    until_status,
)
from tests.acceptance.test_storage_faults import failing_under
from tests.conftest import eventually

THREE_IMAGES = 3


@contextmanager
def small_disk(folder: Path, size: str = "16m") -> Iterator[Path]:
    """A tmpfs of `size` mounted at `folder` for the duration."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


def fill(folder: Path) -> Path:
    """Write one file in `folder` until the file system has no byte left."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as handle:
        for chunk in (b"\0" * 65536, b"\0" * 512, b"\0"):
            try:
                while True:
                    handle.write(chunk)
            except OSError as error:
                assert error.errno == errno.ENOSPC, error
    return filler


async def assert_failed_cleanly(app, http, project_id: str, job_id: str) -> None:
    failed = await until_status(http, project_id, job_id, "failed", "completed", "cancelled", timeout=30)
    await app.settled(job_id)
    events = await log(http, project_id, job_id)
    assert failed["status"] == "failed" and failed["errorCode"] == "STORAGE_UNAVAILABLE", failed
    assert_log_is_sound(events)
    assert events[-1]["type"] == "export:failed" and events[-1]["code"] == "STORAGE_UNAVAILABLE"
    for text in (failed["error"], events[-1]["error"]):
        assert "/" not in text and "Errno" not in text and "tmpfs" not in text, text
    assert failed["available"] is False


async def assert_recovers(app, http, project_id: str, job_id: str) -> None:
    exports = app.runtime.settings.exports_dir

    def nothing_half_written():  # the failed attempt's folder goes (at once, or at the next sweep)
        return not any(exports.glob(f"{job_id}.*"))

    await eventually(nothing_half_written, 10, message="the failed attempt's folder to go")
    assert [job for job in app.runtime.engine.running] == []

    async def ready():
        return (await http.get("/api/readyz")).status_code == 200
    await eventually(ready, 10, interval=0.1, message="the server to be ready again")
    again = await start(http, project_id)
    done = await until_status(http, project_id, again["id"], "completed", "failed", timeout=30)
    assert done["status"] == "completed" and done["available"] is True, done


async def test_a_disk_that_fills_up_mid_export_fails_the_job_cleanly_and_the_server_recovers(tmp_path, backend):
    with small_disk(tmp_path / "data" / "storage" / "exports") as disk:
        async with running(tmp_path, items=1, janitor_interval_seconds=0.2) as app:
            _, token = await app.user("ada@example.com")
            project_id, _ = await app.project(token, images=THREE_IMAGES)
            async with app.client(token) as http:
                job_id = (await start(http, project_id))["id"]
                await held_at_first_item(app, http, project_id, job_id)
                filler = fill(disk)
                app.runtime.services.write_probe._passed_at = float("-inf")  # the next probe runs now
                not_ready = await http.get("/api/readyz")
                app.items.release(job_id)
                await assert_failed_cleanly(app, http, project_id, job_id)
                app.items.open_all()
                filler.unlink()  # the operator makes room
                await assert_recovers(app, http, project_id, job_id)
    assert not_ready.status_code == 503, not_ready.text


async def test_storage_that_turns_read_only_mid_export_fails_the_job_cleanly_and_the_server_recovers(
        tmp_path, backend, monkeypatch):
    read_only = False
    genuine_open = archive.ArchiveWriter._open

    def open_entry(self, arcname, compress, size):
        if read_only:
            raise OSError(errno.EROFS, "Read-only file system", str(self.path))
        return genuine_open(self, arcname, compress, size)

    monkeypatch.setattr(archive.ArchiveWriter, "_open", open_entry)
    async with running(tmp_path, items=1, janitor_interval_seconds=0.2) as app:
        _, token = await app.user("ada@example.com")
        project_id, _ = await app.project(token, images=THREE_IMAGES)
        exports = app.runtime.settings.exports_dir
        async with app.client(token) as http:
            job_id = (await start(http, project_id))["id"]
            await held_at_first_item(app, http, project_id, job_id)
            assert any(exports.glob(f"{job_id}.*/*.zip"))  # a ZIP is half-written
            read_only = True
            with monkeypatch.context() as fault:
                fault.setattr(exportd.storage, "write_file", failing_under(exports, errno.EROFS))
                app.runtime.services.write_probe._passed_at = float("-inf")
                not_ready = await http.get("/api/readyz")
                app.items.release(job_id)
                await assert_failed_cleanly(app, http, project_id, job_id)
                app.items.open_all()
            read_only = False  # the storage is writable again
            await assert_recovers(app, http, project_id, job_id)
    assert not_ready.status_code == 503, not_ready.text
