"""The throughput baseline: Celery's prefork pool running no-op tasks, persisting nothing.

A Celery app on the local Redis (database 15, which this module flushes) whose
only task does nothing and stores no result. `measure(n)` starts a worker
(prefork, one process per CPU, as `celery worker` does by default), waits
until it answers a ping, sends `n` tasks from this process as fast as kombu
publishes them, and stamps the moment the worker's own counters say the n-th
task has run (polled with `inspect().stats()` every 20 ms). Same shape as the
exportd figure: submission and execution overlap, on the same two cores.

Used by ``throughput.py`` (and runnable alone: ``.venv/bin/python bench/_celery_noop.py``).
Needs ``celery[redis]`` (``pip install -e '.[bench]'``) and Redis at 127.0.0.1:6379.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from celery import Celery

BROKER = os.environ.get("EXPORTD_BENCH_CELERY_BROKER", "redis://127.0.0.1:6379/15")
QUEUE = "exportd-bench-noop"

app = Celery("exportd_bench_noop", broker=BROKER)
app.conf.update(task_ignore_result=True, worker_hijack_root_logger=False, broker_connection_retry_on_startup=True,
                task_default_queue=QUEUE)


@app.task(name="noop")
def noop() -> None:
    return None


@dataclass
class CeleryRate:
    tasks: int
    seconds: float
    publish_seconds: float
    concurrency: int

    @property
    def per_second(self) -> float:
        return self.tasks / self.seconds


def _ran(expected_before: int) -> int:
    stats = app.control.inspect(timeout=0.5, limit=1).stats() or {}
    return sum(worker.get("total", {}).get("noop", 0) for worker in stats.values()) - expected_before


def _wait_until(predicate, timeout: float, interval: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"celery baseline: timed out waiting for {what}")


def measure(tasks: int = 2000, concurrency: int | None = None, warmup: int = 200, nice: int = 0) -> CeleryRate:
    """Run `warmup` then `tasks` no-op tasks through a fresh prefork worker; the second batch is timed.
    `nice`: added to the worker's niceness (as the workers it is compared with)."""
    concurrency = concurrency or os.cpu_count() or 1
    with app.connection_for_write() as connection:
        connection.default_channel.client.flushdb()
    here = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": f"{here}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "_celery_noop", "worker", "--pool=prefork",
         f"--concurrency={concurrency}", "-Q", QUEUE, "--loglevel=WARNING", "--without-gossip",
         "--without-mingle", "--without-heartbeat"],
        cwd=here, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=(lambda: os.nice(nice)) if nice > 0 else None)  # noqa: PLW1509 - os.nice only
    try:
        _wait_until(lambda: app.control.ping(timeout=0.5), 60, 0.2, "the worker to answer a ping")
        for _ in range(warmup):
            noop.delay()
        _wait_until(lambda: _ran(0) >= warmup, 60, 0.05, "the warm-up tasks")
        started = time.perf_counter()
        for _ in range(tasks):
            noop.delay()
        published = time.perf_counter()
        _wait_until(lambda: _ran(warmup) >= tasks, 300, 0.02, "the timed tasks")
        finished = time.perf_counter()
        return CeleryRate(tasks, finished - started, published - started, concurrency)
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def available() -> str | None:
    """Why the baseline cannot run here, or None when it can."""
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
    except Exception as error:  # any broker failure means: no baseline in this run
        return f"Redis at {BROKER} is not reachable ({error.__class__.__name__})"
    return None


if __name__ == "__main__":
    reason = available()
    if reason:
        sys.exit(reason)
    rate = measure()
    print(f"celery prefork x{rate.concurrency}: {rate.tasks} no-op tasks in {rate.seconds:.2f} s "
          f"= {rate.per_second:.1f} tasks/s (published in {rate.publish_seconds:.2f} s)")
