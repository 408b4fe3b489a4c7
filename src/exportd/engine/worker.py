"""``exportd worker``: a Celery worker (prefork pool) whose tasks run exports with the shared runner.

The worker's main process keeps the one LISTEN connection of the worker
(`engine/stops.py`): it hears the cluster's stopping events (a cancel committed
on any API node, a project deleted, a share revoked, a lease reaped) and hands
them to every child, which sets its running job's stop signal at once. Each
prefork child builds, once, after the fork: an event loop on a thread of its
own, a store, a `JobRunner`, and the inbox of those stop signals. A task (the
job id only) waits for ``runner.run_job`` on that loop. The store check of the
runner stays the fallback when no stop signal comes. CPU-heavy steps run
inline: the prefork pool is the process pool here, and each child yields the
CPU to API nodes on the same machine: its main thread lowers its priority by
``EXPORTD_EXPORT_NICE`` before it starts any other thread, which inherit it.

Told to stop (SIGTERM to the worker, or to each of its processes as systemd
does), a child hands its running export back at once, as the embedded engine
does at shutdown: the pipeline stops at its next item, the attempt's folder is
removed and the job is committed `queued` again, which sends it to another
worker. Celery's own warm shutdown would instead wait for the export to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading

from celery import Celery
from celery.signals import (
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_shutdown,
    worker_shutting_down,
)

from exportd.config import Settings
from exportd.engine.celery_app import RUN_EXPORT, CeleryDispatcher, create_celery
from exportd.engine.children import die_with_parent, lower_priority
from exportd.engine.hooks import EngineHooks
from exportd.engine.runner import JobRunner
from exportd.engine.stops import StopInbox, StopRelay, new_token
from exportd.storage import LocalStorage
from exportd.store.uow import Store

log = logging.getLogger(__name__)


class WorkerProcess:
    """What one prefork child runs: the loop, the store, the runner, the inbox of its worker's stop signals.

    Without `stops` (a token of `StopRelay`), the child hears of stops only through the runner's store check.
    """

    def __init__(self, settings: Settings, celery: Celery, hooks: EngineHooks | None = None,
                 stops: str | None = None) -> None:
        self.settings = settings.model_copy(update={"export_processes": 0})
        self.celery = celery
        self.hooks = hooks
        self.stops = stops
        self.inbox: StopInbox | None = None
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="exportd-worker-loop", daemon=True)
        self._thread.start()
        self._call(self._start(), timeout=30)

    async def _start(self) -> None:
        settings = self.settings
        self.store = Store(settings.database_url, public_url=settings.public_url)
        self.runner = JobRunner(self.store, LocalStorage(settings.storage_dir), settings, self.hooks)
        self.runner.executor = None  # the loop's default thread pool runs the pipeline
        self.dispatcher = CeleryDispatcher(self.celery, settings)  # a job this process gives back goes to the broker
        self.store.subscribe(self.runner.on_events)
        self.store.subscribe(self.dispatcher.on_events)
        await self.dispatcher.start()
        if self.stops is not None:
            self.inbox = StopInbox(self.stops, on_records=self.runner.on_events, on_resync=self.runner.wake_all)
            self.inbox.attach(asyncio.get_running_loop())

    def run(self, job_id: str) -> None:
        """The task's body: claim and run the job, here, to its last statement."""
        if signal.getsignal(signal.SIGTERM) != self._told_to_stop:  # billiard sets its own after the child's init
            signal.signal(signal.SIGTERM, self._told_to_stop)
        self._call(self.runner.run_job(job_id))

    def _told_to_stop(self, _signum, _frame) -> None:
        self.give_back()

    def give_back(self) -> None:
        """Hand every running export back to the queue (safe to call from a signal handler)."""
        self.loop.call_soon_threadsafe(self.runner.halt_all, "shutdown")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._call(self._stop(), timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    async def _stop(self) -> None:
        if self.inbox is not None:
            self.inbox.close()
        await self.dispatcher.stop()
        await self.store.close()

    def _call(self, coroutine, timeout: float | None = None):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)


_process: WorkerProcess | None = None


def run_export(job_id: str) -> None:
    """The Celery task: the job id is all it carries."""
    if _process is None:
        raise RuntimeError("the worker process was not set up")
    _process.run(job_id)


def register_task(celery: Celery) -> None:
    celery.task(name=RUN_EXPORT, ignore_result=True, acks_late=True, reject_on_worker_lost=True)(run_export)


def worker_hooks(settings: Settings) -> EngineHooks | None:
    """Holds a test in another process arms through Redis (only with EXPORTD_TEST_HOLDS)."""
    if not settings.test_holds:
        return None
    from exportd.holds import RedisHolds

    return RedisHolds(settings.broker_url or "").engine_hooks()


def run_worker(settings: Settings, concurrency: int, loglevel: str = "INFO") -> None:
    """Run a Celery worker in this process until it is told to stop (blocks)."""
    celery = create_celery(settings)
    register_task(celery)
    token = new_token()
    relays: list[StopRelay] = []

    def start_child(**_kwargs) -> None:
        global _process
        die_with_parent()  # a prefork child never outlives its worker, even one killed with SIGKILL
        lower_priority(settings.export_nice)  # before its threads start: they inherit it
        _process = WorkerProcess(settings, celery, worker_hooks(settings), stops=token)

    def stop_child(**_kwargs) -> None:
        if _process is not None:
            _process.close()

    controller: list = []

    def stopping(**_kwargs) -> None:  # in the worker's main process, inside its signal handler
        for pid in _children(controller[0] if controller else None):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def init(sender, **_kwargs) -> None:  # in the main process, before the pool forks its children
        controller.append(sender)
        relay = StopRelay(settings.database_url, token=token, children=lambda: _children(sender),
                          check_seconds=settings.listener_check_seconds)
        relays.append(relay)
        relay.start()

    def shutdown(**_kwargs) -> None:
        for relay in relays:
            relay.stop()

    worker_init.connect(init, weak=False)
    worker_shutdown.connect(shutdown, weak=False)
    worker_shutting_down.connect(stopping, weak=False)
    worker_process_init.connect(start_child, weak=False)
    worker_process_shutdown.connect(stop_child, weak=False)
    name = f"exportd-{os.getpid()}@{socket.gethostname()}"
    celery.worker_main(["worker", "--pool=prefork", f"--concurrency={concurrency}", f"--loglevel={loglevel}",
                        "-Q", settings.celery_queue, "-n", name, "--without-gossip", "--without-mingle"])


def _children(controller) -> list[int]:
    """The prefork pool's process ids (none before the pool has started)."""
    pool = getattr(getattr(getattr(controller, "pool", None), "_pool", None), "_pool", None) or []
    return [process.pid for process in pool if process.pid]
