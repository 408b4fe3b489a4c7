"""The one engine protocol: what a process that hands out or runs exports offers the runtime.

Two implementations, beside each other: ``local.LocalEngine`` runs exports in
the server process (embedded shape), ``celery_app.CeleryDispatcher`` hands them
to Celery workers (scaled out), whose processes run them with the same
``runner.JobRunner`` and ``running.JobContext``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from exportd.domain.events import EventRecord
from exportd.engine.running import RunningJob


class Engine(Protocol):
    @property
    def running(self) -> Mapping[str, RunningJob]:
        """The jobs this process runs now (empty where it runs none)."""

    async def start(self) -> None:
        """Begin taking jobs."""

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop taking jobs; running ones stop at their next item and go back to the queue."""

    def on_events(self, records: Sequence[EventRecord]) -> None:
        """The store's commit listener: submit the jobs these events queued, stop the ones they took away."""
