"""One job while a worker runs it: the stop signal and what the pipeline reports.

The pipeline runs in a worker thread and talks to its job only through a
``JobContext``: it checks the stop signal between items and drops its latest
progress into the job, waking the worker's event-loop side at most once per
progress interval. The event-loop side writes progress to the store.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

from exportd.engine.hooks import EngineHooks
from exportd.export.context import ExportCancelled


@dataclass(frozen=True, slots=True)
class ProgressReport:
    stage: str
    current: int
    total: int
    percent: float
    message: str
    item: str = ""  #: what was just finished, usually an image's file name


@dataclass
class RunningJob:
    job_id: str
    attempt: int
    project_id: str
    started: float = field(default_factory=time.monotonic)
    stop: threading.Event = field(default_factory=threading.Event)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    latest: ProgressReport | None = None
    warnings: list[str] = field(default_factory=list)
    stop_reason: str | None = None  #: "cancelled", "shutdown", "lost"

    def halt(self, reason: str) -> None:
        if not self.stop.is_set():
            self.stop_reason = reason
            self.stop.set()


class JobContext:
    """The StepContext a pipeline gets: thread-safe, cheap to call per item."""

    def __init__(self, job: RunningJob, loop: asyncio.AbstractEventLoop, *, progress_interval: float,
                 item_delay: float, hooks: EngineHooks) -> None:
        self._job = job
        self._loop = loop
        self._interval = progress_interval
        self._item_delay = item_delay
        self._hooks = hooks
        self._last_wake = job.started  # the first report waits one interval: short exports write none
        self._item_began = time.monotonic()

    def raise_if_cancelled(self) -> None:
        if self._job.stop.is_set():
            raise ExportCancelled(self._job.stop_reason or "stopped")

    def advance(self, stage: str, current: int, total: int, percent: float, message: str = "",
                item: str = "") -> None:
        self._job.latest = ProgressReport(stage, current, total, percent, message, item)
        now = time.monotonic()
        if now - self._last_wake >= self._interval:
            self._last_wake = now
            try:
                self._loop.call_soon_threadsafe(self._job.wake.set)
            except RuntimeError:  # the loop is closing: the job is being abandoned anyway
                pass

    def warn(self, message: str) -> None:
        self._job.warnings.append(message)

    def item_done(self) -> None:
        if self._item_delay:  # every item takes `item_delay` in all: its own work, then a sleep for the rest
            rest = self._item_delay - (time.monotonic() - self._item_began)
            if rest > 0:
                time.sleep(rest)  # stands for work that cannot be interrupted
            self._item_began = time.monotonic()
        if self._hooks.on_item is not None:
            self._hooks.on_item(self._job.job_id, self._job.attempt)
