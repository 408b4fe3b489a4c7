"""Per-image work, done inline or in a process pool, handed back in image order.

A writer asks for one part per image (an overlay's PNG bytes, an image's metric
rows, its annotations) and writes each part to the ZIP in its own thread, in
order. With a pool, at most `window` batches are in flight: the pool stays busy
while the writer writes, and memory stays bounded however large the project.
A batch holds as many images as take about `BATCH_SECONDS` to compute, learnt
from the batches already done, so cheap parts (a label file) do not drown in
inter-process overhead and costly ones (an overlay) still spread over the pool.

Before every item it asks the job whether to go on, so a cancel lands within
one item. A function sent to the pool must be a top-level function of plain data.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from itertools import islice
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

BATCH_SECONDS = 0.02
MAX_BATCH = 64


class Workers:
    """Where per-image parts are computed. `cancel()` drops the work not yet started."""

    def __init__(
        self, check: Callable[[], None], pool: Executor | None = None, window: int | None = None
    ) -> None:
        self.check = check  #: raises ExportCancelled when the job must stop
        self.pool = pool
        self.window = window or 2 * (getattr(pool, "_max_workers", None) or os.cpu_count() or 1)
        self._outstanding: set[Future] = set()

    def map(self, fn: Callable[..., R], items: Iterable[T], *args: Any) -> Iterator[tuple[T, R]]:
        """`(item, fn(item, *args))` for every item, in order."""
        if self.pool is None:
            for item in items:
                self.check()
                yield item, fn(item, *args)
            return
        pending: deque[tuple[list[T], Future]] = deque()
        remaining = iter(items)
        per_item = 0.0  # seconds, learnt from finished batches
        try:
            self._submit(pending, remaining, fn, args, 1)
            while pending:
                self.check()
                batch, future = pending.popleft()
                seconds, results = future.result()
                self._outstanding.discard(future)
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
        """Cancel every submitted batch that has not started (the running ones finish unseen)."""
        for future in self._outstanding:
            future.cancel()
        self._outstanding.clear()

    def _submit(self, pending: deque, remaining: Iterator, fn: Callable, args: tuple, size: int) -> None:
        assert self.pool is not None
        while len(pending) < self.window:
            batch = list(islice(remaining, size))
            if not batch:
                return
            future = self.pool.submit(run_batch, fn, batch, args)
            self._outstanding.add(future)
            pending.append((batch, future))


def run_batch(fn: Callable[..., R], batch: list, args: tuple) -> tuple[float, list[R]]:
    """In a worker process: `fn` over a batch, and the seconds it took."""
    began = time.perf_counter()
    results = [fn(item, *args) for item in batch]
    return time.perf_counter() - began, results
