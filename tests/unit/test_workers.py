"""Per-image parts come back in order, with a bounded number of batches in flight, and a cancel
drops the work not yet started."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor

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


def started_then_slow(n: int, folder) -> int:
    """In a pool process: leave a trace of having started item `n`, then take 20 ms."""
    (folder / str(n)).touch()
    time.sleep(0.02)
    return n


def blocked_until_released(n: int, release) -> int:
    (release.parent / "started").touch()
    deadline = time.monotonic() + 30
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    return n


def test_a_cancel_stops_the_batches_a_process_pool_is_already_running_at_their_next_item(tmp_path, monkeypatch):
    monkeypatch.setattr("exportd.export.workers.BATCH_SECONDS", 60.0)  # batches of 64 items, 1.3 s each
    traces = tmp_path / "started"
    traces.mkdir()
    stopped = threading.Event()

    def check() -> None:
        if stopped.is_set():
            raise ExportCancelled()

    with ProcessPoolExecutor(1) as pool:
        workers = Workers(check, pool, window=2, live=tmp_path / ".running")
        with pytest.raises(ExportCancelled):
            for n, _ in workers.map(started_then_slow, range(200), traces):
                if n == 0:  # batches of one item, then (timed) of 64: stop once the pool runs items 2-65
                    deadline = time.monotonic() + 10
                    while not (traces / "2").exists() and time.monotonic() < deadline:
                        time.sleep(0.001)
                    stopped.set()
        workers.cancel()
        pool.submit(int).result()  # the pool's only process is free again
    started = len(list(traces.iterdir()))
    assert 3 <= started <= 10, f"{started} items ran"  # not the 64 of the batch the pool was running
    assert not (tmp_path / ".running").exists()


def test_a_cancel_is_seen_while_a_batch_is_still_being_computed(tmp_path):
    release = tmp_path / "release"
    stopped = threading.Event()
    outcome: list[BaseException] = []

    def check() -> None:
        if stopped.is_set():
            raise ExportCancelled()

    def consume(workers: Workers) -> None:
        try:
            list(workers.map(blocked_until_released, range(3), release))
        except BaseException as error:  # noqa: BLE001 - handed to the test
            outcome.append(error)

    with ProcessPoolExecutor(1) as pool:
        workers = Workers(check, pool, live=tmp_path / ".running")
        consumer = threading.Thread(target=consume, args=(workers,))
        consumer.start()
        deadline = time.monotonic() + 10
        while not (tmp_path / "started").exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        stopped.set()  # while the pool computes the first batch
        consumer.join(timeout=10)
        finished_first = not consumer.is_alive()
        release.touch()  # only now can the batch finish
        consumer.join()
        workers.cancel()
    assert finished_first, "the wait for the batch ignored the cancel"
    assert len(outcome) == 1 and isinstance(outcome[0], ExportCancelled)
