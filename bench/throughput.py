"""Throughput: exports of an empty project completed per second, end to end, every event persisted.

The embedded default shape: the real app served by uvicorn (127.0.0.1, port 0,
in this event loop), SQLite in a temporary data folder, workers in the server
process with ``worker_concurrency`` = CPU count (the production default), the
production progress interval (0.25 s) and store check (0.5 s), and a per-user
active-export limit high enough not to refuse any job. The project has no
images, so each export is the bare job machinery: the queued event, the claim,
the project snapshot, the pipeline in a worker thread (README, metadata.json,
closing the ZIP), throttled progress, the completion, each transition with its
event row, and the relay emitting every event to Socket.IO.

N jobs (2,000 by default) are started, by 8 concurrent producers, in two ways,
each on a fresh server and data folder:

* services: ``runtime.services.start_export(...)`` called directly;
* HTTP: ``POST /api/projects/{id}/export`` with httpx (bearer token).

The clock runs from the first start to the commit of the N-th terminal event,
counted by a store listener. The target is the rate at which Celery's prefork
pool runs no-op tasks on the same machine while persisting nothing: it is
measured first, in the same run (``_celery_noop.py``: a prefork worker with one
process per CPU on the local Redis, N no-op tasks published from this process,
ignore_result), unless ``--no-baseline`` is given or Redis is not reachable;
the figure quoted for this machine kind, 480 jobs/s, is printed beside it.
Printed: jobs/s and its ratio to both, how fast the jobs were submitted,
the CPU each thread used, and a check of the store: every job completed, with a
gap-free event log (seq 1..n) holding exactly one terminal event,
``export:completed``, as its last.

``--profile`` runs the services phase under cProfile (the event-loop thread,
where the job machinery runs) and prints the functions with the most own time
and exportd's functions with the most cumulative time (cProfile counts every
resumption of a coroutine as a call, so cumulative times of coroutines overlap;
own times are sound); ``--profile pyinstrument`` samples with pyinstrument
instead, when installed. Either way the profiled run also counts SQL
statements by kind and store trips (one per transaction) per job.

Run: ``.venv/bin/python bench/throughput.py [--jobs 2000] [--producers 8] [--workers N] [--only services|http]
[--profile [cprofile|pyinstrument]] [--no-baseline]`` (the baseline needs ``pip install -e '.[bench]'``)
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from sqlalchemy import event, select

from _harness import GcPauses, ThreadCpu, account, header, serve, stop, verdict
from exportd.api.app import create_app
from exportd.domain.jobs import EventType
from exportd.domain.requests import ExportRequest
from exportd.store.prepared import Prepared
from exportd.store.tables import export_events, export_jobs
from exportd.testing import test_settings

STATED_TARGET = 480.0  #: jobs/s: Celery prefork no-op tasks, the figure quoted for this machine kind
_TABLES = re.compile(r"\b(?:FROM|INTO|UPDATE|JOIN)\s+(\w+)", re.IGNORECASE)
TERMINAL = {EventType.COMPLETED, EventType.FAILED, EventType.CANCELLED}


class Finish:
    """A store listener that counts terminal events and stamps the N-th."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.terminal: Counter[str] = Counter()
        self.events = 0
        self.done = asyncio.Event()
        self.finished_at = 0.0

    def __call__(self, records) -> None:
        self.events += len(records)
        for record in records:
            if record.type in TERMINAL:
                self.terminal[record.type.value] += 1
                if sum(self.terminal.values()) == self.expected:
                    self.finished_at = time.perf_counter()
                    self.done.set()


class SqlCensus:
    """Counts, for the profile: SQL statements by kind, and store trips ("hops").

    Every ``store.apply``/``store.query`` is one transaction run in one call on
    the connection's thread: one hop of the event loop to that thread and back.
    """

    def __init__(self) -> None:
        self.statements: Counter[str] = Counter()
        self.hops = 0
        self._original = None
        self._listeners: list = []

    def attach(self, runtime) -> None:
        backend = runtime.store._backend
        self._listeners = [(engine, self._statement(label))
                           for label, engine in (("writer", backend.writer), ("reader", backend.reader))]
        for target, listener in self._listeners:
            event.listen(target, "before_cursor_execute", listener)
        self._backend, self._original = backend, backend.run
        census = self

        async def counted(work, **kwargs):
            census.hops += 1
            return await census._original(work, **kwargs)

        backend.run = counted
        # the hot statements skip SQLAlchemy's execution (and its events): count them where they run
        self._prepared_execute = original_execute = Prepared.execute

        def execute(prepared, cursor, params):
            writer = threading.current_thread().name.startswith("exportd-sqlite-writer")
            census._count("writer" if writer else "reader", prepared.sql)
            return original_execute(prepared, cursor, params)

        Prepared.execute = execute

    def detach(self) -> None:
        for target, listener in self._listeners:
            event.remove(target, "before_cursor_execute", listener)
        self._listeners = []
        if getattr(self, "_prepared_execute", None) is not None:
            Prepared.execute = self._prepared_execute
            self._prepared_execute = None
        if self._original is not None:
            del self._backend.run
            self._original = None

    def _statement(self, label: str):
        def on_execute(conn, cursor, statement, parameters, context, executemany) -> None:
            self._count(label, statement)

        return on_execute

    def _count(self, label: str, statement: str) -> None:
        words = statement.split()
        verb = words[0].upper() if words else "?"
        tables = sorted(set(_TABLES.findall(statement)))
        extra = " count(*)" if verb == "SELECT" and "count(*)" in statement else ""
        extra += " RETURNING" if "RETURNING" in statement else ""
        self.statements[f"{label}: {verb}{extra} {' '.join(tables) or ' '.join(words[1:2])}"] += 1

    def lines(self, jobs: int) -> list[str]:
        rows = [f"  store trips: {self.hops} ({self.hops / jobs:.1f} per job); "
                f"SQL statements: {sum(self.statements.values())} "
                f"({sum(self.statements.values()) / jobs:.1f} per job), by kind (per job):"]
        for kind, count in self.statements.most_common():
            rows.append(f"    {count / jobs:6.2f}  {kind}")
        return rows


async def check_store(runtime, job_ids: set[str]) -> dict:
    """Read every job and event back: statuses, event counts, and whether each log is sound."""
    def read(repo):
        jobs = repo.conn.execute(select(export_jobs.c.id, export_jobs.c.status)).all()
        events = repo.conn.execute(select(export_events.c.job_id, export_events.c.seq, export_events.c.type)
                                   .order_by(export_events.c.job_id, export_events.c.seq)).all()
        return jobs, events

    jobs, rows = await runtime.store.query(read)
    statuses = Counter(row.status for row in jobs if row.id in job_ids)
    logs: dict[str, list[tuple[int, str]]] = {job_id: [] for job_id in job_ids}
    for row in rows:
        if row.job_id in logs:
            logs[row.job_id].append((row.seq, row.type))
    unsound = []
    for job_id, log in logs.items():
        seqs = [seq for seq, _ in log]
        terminal = [kind for _, kind in log if kind in {t.value for t in TERMINAL}]
        if (seqs != list(range(1, len(log) + 1)) or terminal != ["export:completed"]
                or log[-1][1] != "export:completed"):
            unsound.append(job_id)
    per_job = Counter(len(log) for log in logs.values())
    kinds = Counter(kind for log in logs.values() for _, kind in log)
    return {"statuses": dict(statuses), "unsound": unsound, "per_job": dict(sorted(per_job.items())),
            "events": sum(len(log) for log in logs.values()), "kinds": dict(kinds)}


async def run(mode: str, jobs: int, producers: int, workers: int, profiler=None,
              census: SqlCensus | None = None, options: dict | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"exportd-bench-throughput-{mode}-") as tmp:
        settings = test_settings(
            Path(tmp) / "data", worker_concurrency=workers, max_active_exports_per_user=10_000_000,
            progress_interval_seconds=0.25, store_check_seconds=0.5, gc_freeze_on_start=True,
        )
        app = create_app(settings)
        runtime = app.runtime
        url, server, task = await serve(app)
        try:
            user_id, token = await account(url, f"{mode}@example.com")
            project = await runtime.services.create_project(user_id, "Empty project")
            finish = Finish(jobs)
            runtime.store.subscribe(finish)
            job_ids: list[str] = []
            remaining = iter(range(jobs))
            body = {"options": options} if options is not None else {}
            request = ExportRequest.model_validate(body)
            http = httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60,
                                     limits=httpx.Limits(max_connections=producers))

            async def by_services() -> None:
                for _ in remaining:
                    job, _ = await runtime.services.start_export(user_id, project.id, request)
                    job_ids.append(job.id)

            async def by_http() -> None:
                for _ in remaining:
                    response = await http.post(f"/api/projects/{project.id}/export", json=body)
                    response.raise_for_status()
                    job_ids.append(response.json()["id"])

            producer = by_services if mode == "services" else by_http
            if census is not None:
                census.attach(runtime)
            cpu = ThreadCpu()
            cpu.start()
            collections = GcPauses()
            collections.start()
            if profiler is not None:
                profiler.enable()
            began = time.perf_counter()
            await asyncio.gather(*(producer() for _ in range(producers)))
            submitted = time.perf_counter() - began
            done_while_submitting = sum(finish.terminal.values())
            try:
                await asyncio.wait_for(finish.done.wait(), timeout=300)
            finally:
                if profiler is not None:
                    profiler.disable()
                cpu.stop()
                collections.stop()
                if census is not None:
                    census.detach()
            elapsed = finish.finished_at - began
            await http.aclose()
            await runtime.relay.drain()
            checked = await check_store(runtime, set(job_ids))
        finally:
            await stop(server, task)
    return {"mode": mode, "jobs": jobs, "elapsed": elapsed, "submitted": submitted, "terminal": dict(finish.terminal),
            "done_while_submitting": done_while_submitting,
            "cpu": cpu, "gc": collections, "checked": checked, "concurrency": settings.worker_concurrency}


def report(result: dict, baseline: float | None) -> None:
    rate = result["jobs"] / result["elapsed"]
    checked = result["checked"]
    print(f"-- {result['mode']}: {result['jobs']} jobs, {result['concurrency']} workers")
    print(f"  submitted in {result['submitted']:.2f} s ({result['jobs'] / result['submitted']:.0f} starts/s); "
          f"all terminal after {result['elapsed']:.2f} s")
    drained = result["jobs"] - result["done_while_submitting"]
    print(f"  completed while submitting: {result['done_while_submitting']} "
          f"({result['done_while_submitting'] / result['submitted']:.0f}/s); the other {drained} after it "
          f"({drained / max(result['elapsed'] - result['submitted'], 1e-9):.0f}/s)")
    if baseline is not None:
        print(f"  throughput {rate:7.1f} jobs/s   celery no-op baseline (this run) {baseline:.0f}/s   "
              f"ratio {rate / baseline:.2f}x  -> {verdict(rate, baseline, lower_is_better=False)}")
    print(f"  throughput {rate:7.1f} jobs/s   stated target {STATED_TARGET:.0f} jobs/s   ratio {rate / STATED_TARGET:.2f}x"
          + ("" if baseline is not None else f"  -> {verdict(rate, STATED_TARGET, lower_is_better=False)}"))
    print(f"  terminal events: {result['terminal']}; job statuses in the store: {checked['statuses']}")
    print(f"  events stored: {checked['events']} ({checked['events'] / result['elapsed']:.0f} event rows/s); "
          f"by type {checked['kinds']}")
    print(f"  events per job: {checked['per_job']}")
    sound = result["jobs"] - len(checked["unsound"])
    print(f"  event logs gap-free (seq 1..n) and ending in export:completed: {sound}/{result['jobs']}"
          + ("" if not checked["unsound"] else f"  UNSOUND e.g. {checked['unsound'][:3]}"))
    for line in result["cpu"].lines():
        print(line)
    print(result["gc"].line())
    sys.stdout.flush()


def print_profile(profiler: cProfile.Profile) -> None:
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(r"src/exportd", 30)
    print("-- profile of the services phase (event-loop thread, cProfile)")
    for line in stream.getvalue().splitlines():
        if line.strip() and not line.startswith("   Random listing"):
            print("  " + line.replace(str(Path(sys.prefix).parent), "."))


def celery_baseline(jobs: int) -> float | None:
    """Celery's prefork pool running `jobs` no-op tasks on this machine, now; None (said why) if it cannot run."""
    try:
        import _celery_noop
    except ImportError:
        print("-- celery no-op baseline: skipped (celery is not installed: pip install -e '.[bench]')")
        return None
    reason = _celery_noop.available()
    if reason:
        print(f"-- celery no-op baseline: skipped ({reason})")
        return None
    rate = _celery_noop.measure(jobs)
    print(f"-- celery no-op baseline: prefork x{rate.concurrency}, {rate.tasks} tasks in {rate.seconds:.2f} s "
          f"(published in {rate.publish_seconds:.2f} s): {rate.per_second:.1f} tasks/s")
    sys.stdout.flush()
    return rate.per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--producers", type=int, default=8)
    parser.add_argument("--only", choices=("services", "http"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="worker_concurrency (default: the CPU count, the production default)")
    parser.add_argument("--profile", nargs="?", const="cprofile", choices=("cprofile", "pyinstrument"))
    parser.add_argument("--no-baseline", action="store_true", help="skip the Celery no-op baseline")
    parser.add_argument("--options", type=json.loads, default=None,
                        help='export options as JSON (default: the defaults), e.g. \'{"metricsFormats": []}\'')
    args = parser.parse_args()
    header("throughput: empty-project exports, end to end, every event persisted (embedded SQLite)")
    print(f"  export options: {json.dumps(args.options) if args.options is not None else 'the defaults'}")
    baseline = None if args.no_baseline else celery_baseline(args.jobs)
    modes = [args.only] if args.only else ["services", "http"]
    for mode in modes:
        profiler = census = None
        if args.profile == "cprofile" and mode == "services":
            profiler = cProfile.Profile()
        elif args.profile == "pyinstrument" and mode == "services":
            from pyinstrument import Profiler

            profiler = Profiler(async_mode="disabled")
            profiler.enable, profiler.disable = profiler.start, profiler.stop
        if args.profile and mode == "services":
            census = SqlCensus()
        result = asyncio.run(run(mode, args.jobs, args.producers, args.workers, profiler, census, args.options))
        report(result, baseline)
        if census is not None:
            print(f"  event-loop CPU per job: {result['cpu'].used.get('MainThread (event loop)', 0) / args.jobs * 1000:.2f} ms "
                  "(profiled run)")
            for line in census.lines(args.jobs):
                print(line)
        if isinstance(profiler, cProfile.Profile):
            print_profile(profiler)
        elif profiler is not None:
            print(profiler.output_text(unicode=False, color=False, show_all=False))


if __name__ == "__main__":
    main()
