"""One export, from its claim to its last statement: what every engine runs.

The runner claims a job with the guarded CLAIM transition, runs the pipeline in
a thread, and meanwhile, on the event loop, writes throttled progress, renews
its lease, enforces the time limit and checks the store. A committed cancel
reaches the pipeline at once through the job's stop signal (`on_events`, fed by
the store's commit listeners in this process and, scaled out, by the
notifications of other processes); every later statement of the runner is
fenced by its attempt number, so a runner that lost its job can change
nothing, emit nothing, and deletes its own scratch folder.

The embedded engine (`local.py`) feeds it from an in-process queue; a Celery
worker (`worker.py`) from the broker. Both share this code and `JobContext`.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from datetime import UTC, datetime
from pathlib import Path

from exportd.config import Settings
from exportd.domain.errors import StoreUnavailable
from exportd.domain.events import EventRecord
from exportd.domain.filenames import export_file_names
from exportd.domain.jobs import CancelReason, EventType, JobStatus
from exportd.domain.options import ExportOptions
from exportd.engine.hooks import EngineHooks
from exportd.engine.running import JobContext, RunningJob
from exportd.engine.snapshot import load_snapshot
from exportd.export.context import ExportCancelled
from exportd.export.failure import failure_of
from exportd.export.pipeline import build_export
from exportd.storage import LocalStorage
from exportd.store.uow import Store

log = logging.getLogger(__name__)

#: events that take a job away from the attempt running it
_STOPPING = {EventType.CANCELLED: "cancelled", EventType.FAILED: "lost", EventType.QUEUED: "lost"}


class JobRunner:
    def __init__(self, store: Store, storage: LocalStorage, settings: Settings,
                 hooks: EngineHooks | None = None) -> None:
        self.store = store
        self.storage = storage
        self.settings = settings
        self.hooks = hooks or EngineHooks()
        self.running: dict[str, RunningJob] = {}
        self.idle = asyncio.Event()  #: set whenever the last running job let go
        self.executor: Executor | None = None  #: runs each export's pipeline (the owner's)
        self.processes: Executor | None = None  #: CPU-heavy steps, or None for inline (the owner's)

    def on_events(self, records: Sequence[EventRecord]) -> None:
        """Committed events, from this process or another: stop the attempts they took the job from."""
        for record in records:
            running = self.running.get(record.job_id)
            if running is not None and record.type in _STOPPING:
                running.halt(_STOPPING[record.type])

    def halt_all(self, reason: str) -> None:
        for job in list(self.running.values()):
            job.halt(reason)

    def wake_all(self) -> None:
        """Make every supervisor look at the store now (after a deaf spell of the notifications)."""
        for job in list(self.running.values()):
            job.wake.set()

    async def run_job(self, job_id: str) -> None:
        """Claim the job and run it to its last statement; nothing at all when the claim loses."""
        lease = self.settings.lease_seconds
        job = await self.store.claim(job_id, lease_seconds=lease)
        if job is None:
            return  # cancelled while queued, or another worker took it
        running = RunningJob(job_id=job.id, attempt=job.attempt, project_id=job.project_id)
        self.running[job.id] = running
        scratch = self.storage.scratch(job.id, job.attempt)
        try:
            await self._run_claimed(job, running, scratch)
        finally:
            running.halt("done")  # whatever ended the runner (even a store gone away), the pipeline stops too
            if self.running.get(job.id) is running:  # a later attempt may have taken the slot
                del self.running[job.id]
            if not self.running:
                self.idle.set()

    async def _run_claimed(self, job, running: RunningJob, scratch: Path) -> None:
        loop = asyncio.get_running_loop()
        try:
            await self.hooks.after_claim(job.id, job.attempt)
            snapshot = await load_snapshot(self.store, self.storage, job)
            options = ExportOptions.model_validate(job.options)
            context = JobContext(running, loop, progress_interval=self.settings.progress_interval_seconds,
                                 item_delay=self.settings.pipeline_item_delay_seconds, hooks=self.hooks)

            def export():
                scratch.mkdir(parents=True, exist_ok=True)
                try:
                    return build_export(snapshot, options, scratch, job_id=job.id, generated_at=datetime.now(UTC),
                                        ctx=context, pool=self.processes, started_at=job.created_at)
                except ExportCancelled:
                    _remove(scratch)  # at once, on this thread: not after a hop to the loop and another thread
                    raise

            result = await self._supervise(running, loop.run_in_executor(self.executor, export))
            await self.hooks.before_complete(job.id, job.attempt)
            elapsed = round(time.monotonic() - running.started, 6)
            won = await self.store.complete(
                job.id, job.attempt, user_id=job.user_id, publish=lambda: self.storage.publish(result.path),
                names=export_file_names(job.project_name, job.created_at, job.id), export_size=result.size,
                warnings=list(running.warnings), processing_time=elapsed)
            if won is None:
                await self._remove(scratch)
        except ExportCancelled as stopped:
            _forget_frames(stopped)
            await self._remove(scratch)
            if running.stop_reason == "shutdown":
                await self.store.apply(lambda repo: repo.requeue(job.id, job.attempt, lease_expired_before=None))
        except asyncio.CancelledError:
            running.halt("shutdown")
            _remove(scratch)
            raise
        except StoreUnavailable:  # a statement met a dropped connection: whether it committed is unknown
            # (a completion may have published this folder). Touch nothing: the lease runs out, the reaper
            # hands the job on or fails it, and the janitor removes the folders the stored state leaves unused.
            log.warning("export %s: the store became unavailable; the attempt is left to its lease", job.id)
        except Exception as error:  # the export itself failed: record it, fenced
            log.exception("export %s failed", job.id)
            _forget_frames(error)
            await self._remove(scratch)
            failure = failure_of(error)  # the details are in the log above, never in the job
            await self.store.apply(lambda repo: repo.fail(job.id, job.attempt, error=failure.message,
                                                          code=failure.code, retryable=failure.retryable))

    async def _remove(self, folder: Path) -> None:
        await asyncio.get_running_loop().run_in_executor(self.executor, _remove, folder)

    async def _supervise(self, running: RunningJob, pipeline: asyncio.Future):
        """Wait for the pipeline while writing progress, renewing the lease and watching the clock."""
        settings = self.settings
        deadline = running.started + settings.job_timeout_seconds
        last_renewal = time.monotonic()
        written = None
        while True:
            remaining = deadline - time.monotonic()
            tick = settings.store_check_seconds if remaining <= 0 else min(settings.store_check_seconds, remaining)
            waker = asyncio.ensure_future(running.wake.wait())
            await asyncio.wait({pipeline, waker}, timeout=tick, return_when=asyncio.FIRST_COMPLETED)
            waker.cancel()
            running.wake.clear()
            if pipeline.done():
                return pipeline.result()  # raises ExportCancelled or the pipeline's error
            if running.stop.is_set():
                continue  # the pipeline stops at its next item
            try:
                last_renewal, written = await self._look_after(running, deadline, last_renewal, written)
            except StoreUnavailable:  # a dropped connection: the lease covers a few ticks without the store
                log.warning("export %s: the store is unavailable; checking again", running.job_id)

    async def _look_after(self, running: RunningJob, deadline: float, last_renewal: float, written):
        """One tick of supervision: the time limit, progress, the lease, the fallback check.
        Returns (when the lease was last renewed, the progress report last written)."""
        settings = self.settings
        now = time.monotonic()
        if now >= deadline:  # this attempt's time limit: fenced, a later attempt has its own
            await self.store.apply(lambda repo: repo.cancel(
                running.job_id, reason=CancelReason.TIMEOUT, cancelled_by=None, attempt=running.attempt))
            await self._check_still_ours(running)
            return last_renewal, written
        if running.latest is not None and running.latest is not written:
            written = running.latest
            if await self._write_progress(running, written, now):
                return now, written  # a progress write renews the lease too; a refused one does not
        if now - last_renewal >= settings.lease_seconds / 3:
            renewed = await self.store.apply(lambda repo: repo.renew_lease(
                running.job_id, running.attempt, lease_seconds=settings.lease_seconds))
            if not renewed:
                await self._check_still_ours(running)
            return now, written
        await self._check_still_ours(running)
        return last_renewal, written

    async def _write_progress(self, running: RunningJob, report, now: float) -> bool:
        elapsed = now - running.started
        eta = elapsed * (100 - report.percent) / report.percent if report.percent > 0 else None
        row = await self.store.progress(
            running.job_id, running.attempt, progress=round(report.percent, 2), stage=report.stage,
            current=report.current, total=report.total, message=report.message, item=report.item,
            eta_seconds=None if eta is None else round(eta, 2), lease_seconds=self.settings.lease_seconds)
        return row is not None

    async def _check_still_ours(self, running: RunningJob) -> None:
        """The fallback when no signal came: ask the store whether this attempt still holds the job."""
        job = await self.store.query(lambda repo: repo.job(running.job_id))
        if job is None or job.status != JobStatus.PROCESSING or job.attempt != running.attempt:
            running.halt("cancelled" if job is not None and job.status == JobStatus.CANCELLED else "lost")


def _forget_frames(error: BaseException) -> None:
    """Drop the traceback of an export's error once it has been handled.

    Its frames hold the pipeline's locals (the whole project snapshot) and the
    future that holds the error: a reference cycle, so without this every
    stopped export's snapshot would stay in memory until a full collection
    found it, and that collection would then free them all at once.
    """
    error.__traceback__ = None


def _remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
