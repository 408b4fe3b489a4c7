"""Per-image work, done inline or in a process pool, handed back in image order.

A writer asks for one part per image (an overlay's PNG bytes, an image's metric
rows, its annotations) and writes each part to the ZIP in its own thread, in
order. With a pool, at most `window` batches are in flight: the pool stays busy
while the writer writes, and memory stays bounded however large the project.
A batch holds as many images as take about `BATCH_SECONDS` to compute, learnt
from the batches already done, so cheap parts (a label file) do not drown in
inter-process overhead and costly ones (an overlay) still spread over the pool.

Before every item it asks the job whether to go on, so a cancel lands within
one item, and it asks again every `POLL_SECONDS` while it waits for a batch.
Work already handed to the pool stops as soon: a batch runs only while the
export's `live` marker file exists, checked before each of its items, and a
cancel removes it. So a cancelled export leaves the pool within one item's
time, and the pool goes on to other exports' batches.
A function sent to the pool must be a top-level function of plain data.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

BATCH_SECONDS = 0.02
MAX_BATCH = 64
POLL_SECONDS = 0.005  #: how often the stop signal is checked while a batch is awaited


class Workers:
    """Where per-image parts are computed. `cancel()` stops the work handed out and drops the rest."""

    def __init__(
        self, check: Callable[[], None], pool: Executor | None = None, window: int | None = None,
        live: Path | None = None,
    ) -> None:
        self.check = check  #: raises ExportCancelled when the job must stop
        self.pool = pool
        self.window = window or 2 * (pool_size(pool) or os.cpu_count() or 1)
        self.live = live  #: a file that exists while the pool may work for this export (created on first use)
        self._outstanding: set[Future] = set()

    def map(self, fn: Callable[..., R], items: Iterable[T], *args: Any) -> Iterator[tuple[T, R]]:
        """`(item, fn(item, *args))` for every item, in order."""
        if self.pool is None:
            for item in items:
                self.check()
                yield item, fn(item, *args)
            return
        if self.live is not None:
            self.live.touch()
        pending: deque[tuple[list[T], Future]] = deque()
        remaining = iter(items)
        per_item = 0.0  # seconds, learnt from finished batches
        try:
            self._submit(pending, remaining, fn, args, 1)
            while pending:
                batch, future = pending.popleft()
                seconds, results = self._await(future)
                self._outstanding.discard(future)
                if len(results) != len(batch):
                    self.check()
                    raise RuntimeError(f"the marker {self.live} vanished while the export was running")
                per_item = seconds / len(batch) if not per_item else 0.7 * per_item + 0.3 * seconds / len(batch)
                size = max(1, min(MAX_BATCH, round(BATCH_SECONDS / per_item) if per_item else MAX_BATCH))
                self._submit(pending, remaining, fn, args, size)  # keep the pool busy while the caller writes
                for number, (item, result) in enumerate(zip(batch, results, strict=True)):
                    if number:
                        self.check()
                    yield item, result
        finally:
            for _, future in pending:
                future.cancel()
                self._outstanding.discard(future)

    def cancel(self) -> None:
        """Stop the batches the pool is running (at their next item) and drop those not started."""
        if self.live is not None:
            self.live.unlink(missing_ok=True)
        for future in self._outstanding:
            future.cancel()
        self._outstanding.clear()

    def _await(self, future: Future) -> tuple[float, list]:
        """The batch's result, asking the job whether to go on until it comes."""
        while True:
            self.check()
            try:
                return future.result(timeout=POLL_SECONDS)
            except TimeoutError:
                continue

    def _submit(self, pending: deque, remaining: Iterator, fn: Callable, args: tuple, size: int) -> None:
        assert self.pool is not None
        while len(pending) < self.window:
            batch = list(islice(remaining, size))
            if not batch:
                return
            future = self.pool.submit(run_batch, fn, batch, args, self.live)
            self._outstanding.add(future)
            pending.append((batch, future))


def pool_size(pool: Executor | None) -> int | None:
    """The processes of a pool: the server's `SharedPool` says so; a bare ProcessPoolExecutor (tests) too."""
    return getattr(pool, "workers", None) or getattr(pool, "_max_workers", None)


def run_batch(fn: Callable[..., R], batch: list, args: tuple, live: Path | None = None) -> tuple[float, list[R]]:
    """In a worker process: `fn` over a batch while `live` exists, and the seconds it took."""
    began = time.perf_counter()
    results = []
    for item in batch:
        if live is not None and not live.exists():
            break  # the export stopped: the caller reads no result of this batch
        results.append(fn(item, *args))
    return time.perf_counter() - began, results
