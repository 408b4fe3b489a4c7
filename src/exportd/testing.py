"""Test doubles that ship with the package: a recording socket sink and hook gates.

They let tests (and people embedding exportd) hold a job at a precise point
and observe exactly what would have been emitted.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from exportd.config import Settings


def test_settings(data_dir, **overrides: Any) -> Settings:
    """Settings for a test: a private data folder, a fixed secret, cheap password hashing."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "secret_key": "test-secret-key-with-enough-entropy-0123456789",
        "password_hash_fast": True,
        "worker_concurrency": 2,
        "export_processes": 0,  # inline: no process pool to start per test
        "progress_interval_seconds": 0.0,
        "store_check_seconds": 0.05,
        "janitor_interval_seconds": 3600,
        "gc_freeze_on_start": False,  # many runtimes per process: frozen objects would never be freed
    }
    values.update(overrides)
    return Settings(**values)


test_settings.__test__ = False  # not a test, despite its name


@dataclass
class RecordingSink:
    """Stands in for the Socket.IO server: keeps every emitted event, per job, in emit order."""

    emitted: list[tuple[str, dict[str, Any], tuple[str, ...]]] = field(default_factory=list)
    by_job: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))

    async def __call__(self, event: str, payload: dict[str, Any], rooms: tuple[str, ...]) -> None:
        self.emitted.append((event, payload, rooms))
        self.by_job[payload["jobId"]].append(payload)


class Gate:
    """An async hook that holds each job until the test releases it.

    ``await gate.reached(job_id)`` waits until a job arrives at the gate;
    ``gate.release(job_id)`` lets it pass. Use as ``EngineHooks(before_complete=gate)``.
    """

    def __init__(self) -> None:
        self._arrived: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._open: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.passed: list[tuple[str, int]] = []
        self._all_open = False

    async def __call__(self, job_id: str, attempt: int) -> None:
        self._arrived[job_id].set()
        if not self._all_open:
            await self._open[job_id].wait()
        self.passed.append((job_id, attempt))

    async def reached(self, job_id: str, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._arrived[job_id].wait(), timeout)

    def release(self, job_id: str) -> None:
        self._open[job_id].set()

    def open_all(self) -> None:
        """Let every job through, now and from now on."""
        self._all_open = True
        for event in self._open.values():
            event.set()


class ItemGate:
    """A thread-side hook (``EngineHooks(on_item=...)``): holds the pipeline after item `after` of each job."""

    def __init__(self, after: int) -> None:
        self.after = after
        self.items: dict[str, int] = defaultdict(int)
        self._arrived: dict[str, threading.Event] = defaultdict(threading.Event)
        self._open: dict[str, threading.Event] = defaultdict(threading.Event)

    def __call__(self, job_id: str, attempt: int) -> None:
        self.items[job_id] += 1
        if self.items[job_id] == self.after:
            self._arrived[job_id].set()
            self._open[job_id].wait(30)

    async def reached(self, job_id: str, timeout: float = 10.0) -> None:
        if not await asyncio.to_thread(self._arrived[job_id].wait, timeout):
            raise TimeoutError(f"job {job_id} never reached item {self.after}")

    def release(self, job_id: str) -> None:
        self._open[job_id].set()


def end_this_process(*args: Any, **kwargs: Any) -> None:
    """Stands in for a function sent to a process pool: the process ends at once, as when the kernel's
    out-of-memory killer ends it, and its pool breaks."""
    os._exit(1)
