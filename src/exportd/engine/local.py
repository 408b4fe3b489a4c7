"""The embedded engine: worker coroutines in the server process.

A job is queued when its ``export:queued`` event commits; the engine hears it
from the store and puts the job id on its queue. Each worker claims a job with
the guarded CLAIM transition, runs the pipeline in a thread, and meanwhile, on
the event loop, writes throttled progress, renews its lease, enforces the time
limit and checks the store. A committed cancel reaches the pipeline at once
through the job's stop signal; every later statement of the worker is fenced by
its attempt number, so a worker that lost its job can change nothing.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from exportd.config import Settings
from exportd.domain.events import EventRecord
from exportd.domain.filenames import export_file_names
from exportd.domain.jobs import CancelReason, EventType, JobStatus
from exportd.domain.options import ExportOptions
from exportd.engine.children import process_pool
from exportd.engine.hooks import EngineHooks
from exportd.engine.running import JobContext, RunningJob
from exportd.engine.snapshot import load_snapshot
from exportd.export.context import ExportCancelled
from exportd.export.failure import failure_of
from exportd.export.pipeline import build_export
from exportd.storage import LocalStorage
from exportd.store.repository import Repository
from exportd.store.uow import Store

log = logging.getLogger(__name__)

#: events that take a job away from the worker running it
_STOPPING = {EventType.CANCELLED: "cancelled", EventType.FAILED: "lost", EventType.QUEUED: "lost"}


class LocalEngine:
    def __init__(self, store: Store, storage: LocalStorage, settings: Settings,
                 hooks: EngineHooks | None = None) -> None:
        self.store = store
        self.storage = storage
        self.settings = settings
        self.hooks = hooks or EngineHooks()
        self.running: dict[str, RunningJob] = {}
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._workers: list[asyncio.Task] = []
        self._executor: ThreadPoolExecutor | None = None  #: runs each export's pipeline
        self._processes: ProcessPoolExecutor | None = None  #: CPU-heavy steps (overlays, metrics), all exports
        self._idle = asyncio.Event()
        self._stopping = False
        store.subscribe(self.on_events)

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        self._stopping = False
        concurrency = self.settings.worker_concurrency
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="exportd-pipeline")
        if self.settings.export_processes and self._processes is None:
            self._processes = process_pool(self.settings.export_processes)  # its processes die with this one
        for job_id in await self.store.query(lambda repo: repo.pending_job_ids()):
            self._queue.put_nowait(job_id)
        self._workers = [asyncio.create_task(self._work(), name=f"exportd-worker-{n}") for n in range(concurrency)]

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop taking jobs; running ones stop at their next item and go back to the queue."""
        self._stopping = True
        for job in list(self.running.values()):
            job.halt("shutdown")
        if self.running:
            self._idle.clear()
            try:
                await asyncio.wait_for(self._idle.wait(), grace_seconds)
            except TimeoutError:
                log.warning("%d exports did not stop in time; their leases will expire", len(self.running))
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        if self._processes is not None:
            self._processes.shutdown(wait=True, cancel_futures=True)
            self._processes = None

    # -- hearing the store -----------------------------------------------------

    def on_events(self, records: Sequence[EventRecord]) -> None:
        for record in records:
            running = self.running.get(record.job_id)
            if record.type == EventType.QUEUED:  # pending again: no attempt holds it any more
                if running is not None:
                    running.halt("lost")
                self._queue.put_nowait(record.job_id)
            elif running is not None and record.type in _STOPPING:
                running.halt(_STOPPING[record.type])

    # -- one worker ------------------------------------------------------------

    async def _work(self) -> None:
        while not self._stopping:
            job_id = await self._queue.get()
            try:
                await self.run_job(job_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("export %s: worker error", job_id)

    async def run_job(self, job_id: str) -> None:
        if self._stopping:
            return
        lease = self.settings.lease_seconds
        job = await self.store.apply(lambda repo: repo.claim(job_id, lease_seconds=lease))
        if job is None:
            return  # cancelled while queued, or another worker took it
        running = RunningJob(job_id=job.id, attempt=job.attempt, project_id=job.project_id)
        self.running[job.id] = running
        scratch = self.storage.scratch(job.id, job.attempt)
        try:
            await self._run_claimed(job, running, scratch)
        finally:
            if self.running.get(job.id) is running:  # a later attempt may have taken the slot
                del self.running[job.id]
            if not self.running:
                self._idle.set()

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
                return build_export(snapshot, options, scratch, job_id=job.id, generated_at=datetime.now(UTC),
                                    ctx=context, pool=self._processes, started_at=job.created_at)

            result = await self._supervise(running, loop.run_in_executor(self._executor, export))
            await self.hooks.before_complete(job.id, job.attempt)
            elapsed = round(time.monotonic() - running.started, 6)
            names = export_file_names(job.project_name, job.created_at, job.id)

            def complete(repo: Repository):
                return repo.complete(
                    job.id, job.attempt, file_path=self.storage.publish(result.path),
                    file_name=repo.unused_export_name(job.user_id, job.id, names),
                    export_size=result.size, warnings=list(running.warnings), processing_time=elapsed)

            won = await self.store.apply(complete)
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
        except Exception as error:  # the export itself failed: record it, fenced
            log.exception("export %s failed", job.id)
            _forget_frames(error)
            await self._remove(scratch)
            failure = failure_of(error)  # the details are in the log above, never in the job
            await self.store.apply(lambda repo: repo.fail(job.id, job.attempt, error=failure.message,
                                                          code=failure.code, retryable=failure.retryable))

    async def _remove(self, folder: Path) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, _remove, folder)

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
            done, _ = await asyncio.wait({pipeline, waker}, timeout=tick, return_when=asyncio.FIRST_COMPLETED)
            waker.cancel()
            running.wake.clear()
            if pipeline.done():
                return pipeline.result()  # raises ExportCancelled or the pipeline's error
            if running.stop.is_set():
                continue  # the pipeline stops at its next item
            now = time.monotonic()
            if now >= deadline:  # this attempt's time limit: fenced, a later attempt has its own
                await self.store.apply(lambda repo: repo.cancel(
                    running.job_id, reason=CancelReason.TIMEOUT, cancelled_by=None, attempt=running.attempt))
                await self._check_still_ours(running)
                continue
            if running.latest is not None and running.latest is not written:
                written = running.latest
                if await self._write_progress(running, written, now):
                    last_renewal = now  # a progress write renews the lease too; a refused one does not
                    continue
            if now - last_renewal >= settings.lease_seconds / 3:
                last_renewal = now
                renewed = await self.store.apply(lambda repo: repo.renew_lease(
                    running.job_id, running.attempt, lease_seconds=settings.lease_seconds))
                if not renewed:
                    await self._check_still_ours(running)
            else:
                await self._check_still_ours(running)

    async def _write_progress(self, running: RunningJob, report, now: float) -> bool:
        elapsed = now - running.started
        eta = elapsed * (100 - report.percent) / report.percent if report.percent > 0 else None
        row = await self.store.apply(lambda repo: repo.progress(
            running.job_id, running.attempt, progress=round(report.percent, 2), stage=report.stage,
            current=report.current, total=report.total, message=report.message, item=report.item,
            eta_seconds=None if eta is None else round(eta, 2), lease_seconds=self.settings.lease_seconds))
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
