"""The embedded engine: worker coroutines in the server process.

A job is queued when its ``export:queued`` event commits; the engine hears it
from the store and puts the job id on its queue. Each worker coroutine hands
the job to the shared `JobRunner` (claim, pipeline in a thread, supervision,
fenced completion). A committed cancel reaches the pipeline at once: the same
commit listener sets the job's stop signal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from exportd.config import Settings
from exportd.domain.errors import StoreUnavailable
from exportd.domain.events import EventRecord
from exportd.domain.jobs import EventType
from exportd.engine.children import SharedPool, lower_priority
from exportd.engine.hooks import EngineHooks
from exportd.engine.runner import JobRunner
from exportd.engine.running import RunningJob
from exportd.storage import LocalStorage
from exportd.store.uow import Store

log = logging.getLogger(__name__)


class LocalEngine:
    def __init__(self, store: Store, storage: LocalStorage, settings: Settings,
                 hooks: EngineHooks | None = None) -> None:
        self.settings = settings
        self.runner = JobRunner(store, storage, settings, hooks)
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._workers: list[asyncio.Task] = []
        self._executor: ThreadPoolExecutor | None = None  #: runs each export's pipeline
        #: CPU-heavy steps of every export (overlays, metrics) and of imports (tracing label images)
        self._processes: SharedPool | None = (SharedPool(settings.export_processes, settings.export_nice)
                                              if settings.export_processes else None)
        self._stopping = False
        store.subscribe(self.on_events)

    @property
    def pool(self) -> SharedPool | None:
        """The process pool, for other CPU-heavy work of this server (imports); None: work inline."""
        return self._processes

    @property
    def running(self) -> dict[str, RunningJob]:
        return self.runner.running

    @running.setter
    def running(self, value: dict[str, RunningJob]) -> None:  # benchmarks observe it with a dict of their own
        self.runner.running = value

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        self._stopping = False
        concurrency = self.settings.worker_concurrency
        nice = self.settings.export_nice  # pipelines and pool workers yield the CPU to the event loop
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="exportd-pipeline",
                                            initializer=lower_priority, initargs=(nice,))
        if self._processes is not None:
            self._processes.start()  # from the event loop's thread: they die with this process
        self.runner.executor, self.runner.processes = self._executor, self._processes
        for job_id in await self.runner.store.query(lambda repo: repo.pending_job_ids()):
            self._queue.put_nowait(job_id)
        self._workers = [asyncio.create_task(self._work(), name=f"exportd-worker-{n}") for n in range(concurrency)]

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop taking jobs; running ones stop at their next item and go back to the queue."""
        self._stopping = True
        self.runner.halt_all("shutdown")
        if self.running:
            self.runner.idle.clear()
            try:
                await asyncio.wait_for(self.runner.idle.wait(), grace_seconds)
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
        self.runner.executor = self.runner.processes = None

    # -- hearing the store -----------------------------------------------------

    def on_events(self, records: Sequence[EventRecord]) -> None:
        self.runner.on_events(records)  # stops the attempts these events took a job from
        for record in records:
            if record.type == EventType.QUEUED:  # pending again, or new
                self._queue.put_nowait(record.job_id)

    # -- one worker ------------------------------------------------------------

    async def _work(self) -> None:
        while not self._stopping:
            job_id = await self._queue.get()
            try:
                await self.run_job(job_id)
            except asyncio.CancelledError:
                raise
            except StoreUnavailable:  # the claim (or a later step) met a dropped connection: claim again later;
                log.warning("export %s: the store was unavailable; trying again", job_id)  # a claim is guarded
                asyncio.get_running_loop().call_later(self.settings.store_check_seconds, self._queue.put_nowait,
                                                      job_id)
            except Exception:
                log.exception("export %s: worker error", job_id)

    async def run_job(self, job_id: str) -> None:
        if not self._stopping:
            await self.runner.run_job(job_id)
