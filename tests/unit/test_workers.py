"""Per-image parts come back in order, with a bounded number of batches in flight, and a cancel
drops the work not yet started."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from exportd.export.context import ExportCancelled
from exportd.export.workers import Workers


class CountingPool(ThreadPoolExecutor):
    """A thread pool that remembers how many submitted batches were unfinished at most."""

    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        self._max_workers = workers
        self.unfinished = 0
        self.most = 0
        self.submitted: list[Future] = []
        self._lock = threading.Lock()

    def submit(self, fn, /, *args, **kwargs) -> Future:
        with self._lock:
            self.unfinished += 1
            self.most = max(self.most, self.unfinished)
        future = super().submit(fn, *args, **kwargs)
        future.add_done_callback(self._finished)
        self.submitted.append(future)
        return future

    def _finished(self, future: Future) -> None:
        with self._lock:
            self.unfinished -= 1


def slow_square(n: int, delay: float) -> int:
    time.sleep(delay * (1 + n % 3))  # out of order on purpose
    return n * n


def never_cancelled() -> None:
    pass


def test_parts_come_back_in_order_with_at_most_the_window_in_flight():
    with CountingPool(2) as pool:
        workers = Workers(never_cancelled, pool)
        assert workers.window == 4
        results = list(workers.map(slow_square, range(40), 0.002))
    assert results == [(n, n * n) for n in range(40)]
    assert pool.most <= 4


def test_without_a_pool_parts_are_computed_inline_after_asking_to_go_on():
    log = []
    workers = Workers(lambda: log.append("check"))
    for n, square in workers.map(lambda n: log.append(f"part {n}") or n * n, range(3)):
        log.append(f"write {square}")
    assert log == ["check", "part 0", "write 0", "check", "part 1", "write 1", "check", "part 2", "write 4"]


def test_a_cancel_stops_before_the_next_item_and_drops_the_batches_not_started():
    seen = []

    def check() -> None:
        if len(seen) >= 3:
            raise ExportCancelled()

    with CountingPool(1) as pool:
        workers = Workers(check, pool, window=3)
        with pytest.raises(ExportCancelled):
            for n, _ in workers.map(slow_square, range(100), 0.005):
                seen.append(n)
        workers.cancel()
        assert seen == [0, 1, 2]
        assert len(pool.submitted) < 100
        assert any(f.cancelled() for f in pool.submitted)
