"""The Python SDK against the real app over loopback: watch, download, cancel, gaps, and errors by name."""

from __future__ import annotations

import asyncio
import zipfile
from pathlib import Path

import pytest

from exportd.client import (
    BadRequest,
    ExportdClient,
    ExportGone,
    ExportNotReady,
    ExportStillActive,
    FinishedBeforeCancel,
    Gone,
    InvalidOptions,
    JobNotFound,
    NotFound,
    RateLimited,
    Unauthorized,
)
from exportd.client.state import CancelOutcome
from exportd.domain.events import Cancelled, Completed, Progress
from exportd.domain.options import ExportOptions
from tests.acceptance.support import App, running
from tests.conftest import eventually

FAST = ExportOptions(include_visualizations=False, metrics_formats=["csv"], annotation_formats=["coco"])


async def _client(app: App, email: str = "ada@example.com", **kwargs) -> tuple[ExportdClient, str]:
    """A logged-in client, and a project of two images."""
    await app.user(email)
    client = ExportdClient(app.url, **kwargs)
    token = await client.login(email, "correct horse")
    project_id, _ = await app.project(token)
    return client, project_id


async def _collect(client: ExportdClient, job, until=None, timeout: float = 30.0) -> list:
    """Events from watch, until the end (or the first event that satisfies `until`)."""
    events = []

    async def run():
        async for event in client.watch(job):
            events.append(event)
            if until is not None and until(event):
                return

    await asyncio.wait_for(run(), timeout)
    return events


def _files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


async def test_start_watch_and_download_yields_ordered_events_ending_completed_and_a_valid_zip(tmp_path):
    async with running(tmp_path) as app:
        client, project_id = await _client(app)
        async with client:
            job = await client.start_export(project_id, FAST)
            events = await _collect(client, job)

            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            assert isinstance(events[-1], Completed) and events[0].type == "export:queued"
            stored = await app.stored_log(job.id)
            assert [(e.seq, e.type) for e in events] == [(e["seq"], e["type"]) for e in stored]

            out = tmp_path / "out"
            out.mkdir()
            saved = await client.auto_download(job, out / "export.zip")
            assert saved == out / "export.zip"
            with zipfile.ZipFile(saved) as archive:
                assert archive.testzip() is None
                assert "annotations/coco/annotations.json" in archive.namelist()
            assert _files(out) == ["export.zip"]  # no temporary file left behind
            assert await client.auto_download(job, out / "again.zip") is None  # exactly one auto-download


async def test_download_into_a_folder_uses_the_servers_file_name(tmp_path):
    async with running(tmp_path) as app:
        client, project_id = await _client(app)
        async with client:
            job = await client.start_export(project_id, FAST)
            await _collect(client, job)
            saved = await client.download(job, tmp_path)
            final = await client.status(job)
            assert saved == tmp_path / final.file_name and zipfile.is_zipfile(saved)


async def test_download_of_a_cancelled_job_raises_gone_and_leaves_no_file(tmp_path):
    async with running(tmp_path, items=1) as app:
        client, project_id = await _client(app)
        async with client:
            job = await client.start_export(project_id, FAST)
            await app.items.reached(job.id)
            result = await client.cancel(job)
            assert result.status == "cancelled" and result.cancelled_at
            assert (await client.cancel(job.id)).cancelled_at == result.cancelled_at  # idempotent

            events = await _collect(client, job)
            assert isinstance(events[-1], Cancelled) and events[-1].reason == "user_cancelled"

            out = tmp_path / "out"
            out.mkdir()
            with pytest.raises(ExportGone) as raised:
                await client.download(job, out / "export.zip")
            assert isinstance(raised.value, Gone) and raised.value.status_code == 410
            assert await client.auto_download(job, out / "export.zip") is None
            assert _files(out) == []


async def test_watch_fills_a_gap_when_a_live_event_is_lost(tmp_path):
    async with running(tmp_path, items=1) as app:
        # No reconciling or polling within the test's time: only gap detection can recover the lost event.
        client, project_id = await _client(app, reconcile_interval=600, poll_interval=600)
        async with client:
            job = await client.start_export(project_id, FAST)
            before = await _collect(client, job, until=lambda e: isinstance(e, Progress))
            assert client.socket_connected

            dropped: list[int] = []
            emit = app.runtime.relay._sink

            async def lossy(event: str, payload: dict, rooms: tuple[str, ...]) -> None:
                if payload["jobId"] == job.id and not dropped and payload["seq"] > before[-1].seq:
                    dropped.append(payload["seq"])  # lost on the way: the socket never sees it
                    return
                await emit(event, payload, rooms)

            app.runtime.relay._sink = lossy
            app.items.release(job.id)
            after = await _collect(client, job)

            seen = before + after
            assert dropped and dropped[0] in [e.seq for e in after]
            assert [e.seq for e in seen] == list(range(1, len(seen) + 1))
            assert isinstance(seen[-1], Completed)


async def test_watch_falls_back_to_polling_when_the_socket_drops(tmp_path):
    async with running(tmp_path, items=1) as app:
        client, project_id = await _client(app, reconcile_interval=600, poll_interval=0.2)
        async with client:
            job = await client.start_export(project_id, FAST)
            watch = client.watch(job)
            seen = []
            async for event in watch:
                seen.append(event)
                if isinstance(event, Progress):
                    break
            client.realtime = False  # the socket stays down from now on
            await client._sio.eio.disconnect(abort=True)
            await eventually(lambda: not client.socket_connected, message="the socket to drop")
            app.items.release(job.id)

            async def rest():
                async for event in watch:
                    seen.append(event)

            await asyncio.wait_for(rest(), 30)
            assert [e.seq for e in seen] == list(range(1, len(seen) + 1))
            assert isinstance(seen[-1], Completed) and not client.socket_connected


async def test_cancel_after_completion_says_finished_before_cancel_and_never_auto_downloads(tmp_path):
    async with running(tmp_path) as app:
        client, project_id = await _client(app)
        async with client:
            job = await client.start_export(project_id, FAST)
            await _collect(client, job)

            with pytest.raises(FinishedBeforeCancel) as raised:
                await client.cancel(job)
            assert raised.value.job.status == "completed" and raised.value.status_code == 409
            assert "finished before it could be cancelled" in str(raised.value)
            state = client.tracker(job)
            assert state.finished_before_cancel and state.cancel_outcome == CancelOutcome.FINISHED_BEFORE_CANCEL

            out = tmp_path / "out"
            out.mkdir()
            assert await client.auto_download(job, out / "auto.zip") is None
            assert _files(out) == []
            manual = await client.download(job, out / "manual.zip")  # the user's own choice
            assert zipfile.is_zipfile(manual)

            await client.discard(job)
            with pytest.raises(Gone):
                await client.download(job, out / "after-discard.zip")
            assert _files(out) == ["manual.zip"]


async def test_a_job_known_only_by_its_id_is_found_through_the_socket(tmp_path):
    async with running(tmp_path) as app:
        client, project_id = await _client(app)
        async with client:
            job = await client.start_export(project_id, FAST)
            token = client.token
        async with ExportdClient(app.url, token=token) as fresh:
            assert (await fresh.status(job.id)).project_id == project_id
            events = await _collect(fresh, job.id)
            assert isinstance(events[-1], Completed)
            with pytest.raises(JobNotFound):
                await fresh.status("no-such-job")


async def test_errors_come_back_by_name(tmp_path):
    async with running(tmp_path, items=1) as app:
        client, project_id = await _client(app)
        async with client:
            with pytest.raises(NotFound):
                await client.status("no-such-job", project_id)
            with pytest.raises(NotFound):
                await client.start_export("no-such-project")
            with pytest.raises(InvalidOptions) as invalid:
                await client.start_export(project_id, {"pixelToMicrometerScale": 0})
            assert isinstance(invalid.value, BadRequest) and "pixelToMicrometerScale" in str(invalid.value)

            job = await client.start_export(project_id, FAST)
            with pytest.raises(RateLimited) as limited:
                await client.start_export(project_id, FAST)
            assert limited.value.status_code == 429 and limited.value.retry_after >= 1

            await app.items.reached(job.id)
            with pytest.raises(ExportNotReady):
                await client.download(job, tmp_path / "early.zip")
            with pytest.raises(ExportStillActive):
                await client.discard(job)
            assert not (tmp_path / "early.zip").exists()

        async with ExportdClient(app.url) as anonymous:
            with pytest.raises(Unauthorized):
                await anonymous.login("ada@example.com", "wrong password")
            with pytest.raises(Unauthorized):
                await anonymous.projects()


async def test_a_watch_cancelled_as_something_reaches_its_inbox_ends_every_time(tmp_path):
    """The interleaving forced: an item lands in the watch's inbox and the watch is cancelled in the same step
    of the event loop. A watch that swallowed that cancellation would go on following the held export."""
    from exportd.client.sdk import CONNECTED

    async with running(tmp_path, items=1) as app:
        client, project_id = await _client(app, reconcile_interval=600)
        async with client:
            job = await client.start_export(project_id, FAST)
            await app.items.reached(job.id, timeout=30)  # it stays processing until the test releases it
            for _ in range(20):
                watching = asyncio.ensure_future(_collect(client, job, timeout=60))
                await eventually(lambda: client._inboxes.get(job.id), message="the watch to listen")
                await asyncio.sleep(0)  # the watch is waiting on its inbox
                for inbox in client._inboxes[job.id]:
                    inbox.put_nowait(CONNECTED)
                watching.cancel()
                done, _ = await asyncio.wait({watching}, timeout=5)
                assert done and watching.cancelled(), "the watch went on after it was cancelled"
            app.items.release(job.id)
