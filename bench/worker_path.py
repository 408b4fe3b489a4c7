"""One worker process's cost per export: exportd's prefork child against the hand-written peer's task, alone.

Where ``cluster_throughput.py`` measures whole clusters, this looks at the
worker's own path, without scheduling between processes: one process, one job
after another, nothing else running. A fresh PostgreSQL database (migrated),
one user, one empty project.

* exportd: a ``WorkerProcess`` built in this process exactly as a prefork child
  builds it (``engine/worker.py``: the event loop on its thread, the store, the
  runner; not the inbox of stop signals, whose LISTEN connection is the worker
  main process's), production settings.
  ``--jobs`` jobs are created first through the store (each with its
  ``export:queued`` row), then run one at a time with ``process.run(job_id)``,
  which is what the Celery task calls.
* the peer: ``_celery_peer.peer_export`` called in this process after the
  same set-up a prefork child does, on rows inserted into ``peer_jobs``.

Printed for each side: wall time and CPU time (all threads) per job, and for
exportd the SQL statements by kind and the store transactions per job (a
transaction on asyncpg is BEGIN, its statements and COMMIT, each a round trip)
and the wall time of each transaction kind, by the name of the runner's
function that asked for it. The claim, the project's read and the completion
run on asyncpg directly (``store/direct.py``): they are counted apart, by kind,
with their round trips, and are not in the SQLAlchemy counts. ``--profile`` adds cProfile of the worker's loop
thread (own time), where the store work and supervision run.

Run: ``.venv/bin/python bench/worker_path.py [--jobs 500] [--profile]``
Needs PostgreSQL (``EXPORTD_TEST_PG_DSN``) and redis-server (the peer's emits).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import asyncpg
from _harness import ThreadCpu, header
from cluster_scaling import PG_ADMIN_DSN, admin, free_port
from sqlalchemy import event

from exportd.config import Settings
from exportd.engine.celery_app import create_celery
from exportd.engine.worker import WorkerProcess
from exportd.store.migrate import upgrade
from exportd.store.uow import Store


#: round trips of each of store/direct.py's calls (claim: 1 statement in autocommit; completion: BEGIN, the
#: user's lock, the statement, COMMIT; the project's rows: the images, and the polygons only when there are images)
DIRECT_TRIPS = {"claim": 1, "complete": 4, "project_rows": "1-2"}


def statement_kind(statement: str) -> str:
    words = statement.split()
    verb = words[0].upper() if words else "?"
    for keyword in ("FROM", "INTO", "UPDATE"):
        if keyword in words[1:] or verb == keyword:
            index = words.index(keyword) if keyword in words else 0
            target = words[index + 1] if index + 1 < len(words) else ""
            return f"{verb} {target}" + (" FOR UPDATE" if "FOR UPDATE" in statement else "")
    return f"{verb} {' '.join(words[1:3])}"


async def seed(url: str, jobs: int) -> tuple[str, str, list[str]]:
    store = Store(url)
    try:
        user = await store.apply(lambda repo: repo.add_user(f"{uuid.uuid4().hex}@example.com", "x"))
        project = await store.apply(lambda repo: repo.add_project(user.id, "Empty project"))
        ids = []
        for _ in range(jobs):
            job = await store.apply(lambda repo: repo.create_job(project_id=project.id, user_id=user.id, options={},
                                                                 project_name=project.name))
            ids.append(job.id)
        return user.id, project.id, ids
    finally:
        await store.close()


def run_exportd(settings: Settings, ids: list[str], profile: bool) -> list[str]:
    process = WorkerProcess(settings, create_celery(settings))
    statements: Counter[str] = Counter()
    transactions: Counter[str] = Counter()
    spent: dict[str, float] = defaultdict(float)
    spent_cpu: dict[str, float] = defaultdict(float)
    backend = process.store._backend

    def on_execute(conn, cursor, statement, parameters, context, executemany) -> None:
        statements[statement_kind(statement)] += 1

    original = backend.run

    async def counted(work, **kwargs):
        caller = sys._getframe(2).f_code.co_name
        began, began_cpu = time.perf_counter(), time.thread_time()
        try:
            return await original(work, **kwargs)
        finally:
            transactions[caller] += 1
            spent[caller] += time.perf_counter() - began
            spent_cpu[caller] += time.thread_time() - began_cpu  # the loop thread's, while this one waits

    direct = getattr(backend, "direct", None)  # PostgreSQL: the hot transitions straight on asyncpg
    direct_calls: Counter[str] = Counter()
    if direct is not None:
        original_direct = direct._run

        async def counted_direct(work):
            caller = sys._getframe(1).f_code.co_name  # claim, complete, project_rows
            began, began_cpu = time.perf_counter(), time.thread_time()
            try:
                return await original_direct(work)
            finally:
                direct_calls[caller] += 1
                spent[f"direct {caller}"] += time.perf_counter() - began
                spent_cpu[f"direct {caller}"] += time.thread_time() - began_cpu

    try:
        for job_id in ids[:20]:  # warm-up: connections, prepared statements, imports
            process.run(job_id)
        ids = ids[20:]
        event.listen(backend.engine.sync_engine, "before_cursor_execute", on_execute)
        backend.run = counted
        if direct is not None:
            direct._run = counted_direct
        profiler = cProfile.Profile(time.thread_time) if profile else None  # CPU time of the loop thread
        if profiler is not None:
            process._call(_enable(profiler))
        threads = ThreadCpu()
        threads.start()
        cpu, wall = time.process_time(), time.perf_counter()
        for job_id in ids:
            process.run(job_id)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        threads.stop()
        if profiler is not None:
            process._call(_disable(profiler))
    finally:
        process.close()
    n = len(ids)
    lines = [f"-- exportd WorkerProcess: {n} jobs one at a time: {wall / n * 1000:.2f} ms wall, "
             f"{cpu / n * 1000:.2f} ms CPU per job",
             f"  store transactions through SQLAlchemy per job: {sum(transactions.values()) / n:.2f}; their SQL "
             f"statements: {sum(statements.values()) / n:.2f}; their round trips (statements + BEGIN and COMMIT): "
             f"{(sum(statements.values()) + 2 * sum(transactions.values())) / n:.2f}"]
    lines.append("  CPU per job by thread: " + ", ".join(
        f"{name} {seconds / n * 1000:.2f} ms" for name, seconds in sorted(threads.used.items(), key=lambda i: -i[1])
        if seconds > 0))
    for caller, count in direct_calls.most_common():
        each = spent["direct " + caller] / count * 1000
        lines.append(f"    {count / n:5.2f} direct {caller:<24} {each:6.2f} ms each, "
                     f"loop thread CPU meanwhile {spent_cpu['direct ' + caller] / count * 1000:5.2f} ms "
                     f"(on asyncpg: {DIRECT_TRIPS.get(caller, '?')} round trips, not in the counts above)")
    for caller, count in transactions.most_common():
        lines.append(f"    {count / n:5.2f} transactions from {caller:<22} {spent[caller] / count * 1000:6.2f} ms "
                     f"each, loop thread CPU meanwhile {spent_cpu[caller] / count * 1000:5.2f} ms")
    for kind, count in statements.most_common():
        lines.append(f"    {count / n:5.2f}  {kind}")
    if profile:
        stream = io.StringIO()
        stats = pstats.Stats(profiler, stream=stream)
        stats.sort_stats("tottime").print_stats(30)
        lines.append("  profile of the worker's loop thread (cProfile on its CPU clock, own time):")
        lines.extend("  " + line for line in stream.getvalue().splitlines() if line.strip())
    return lines


async def _enable(profiler: cProfile.Profile) -> None:
    profiler.enable()


async def _disable(profiler: cProfile.Profile) -> None:
    profiler.disable()


def run_peer(dsn: str, redis_url: str, storage: Path, user_id: str, project_id: str, jobs: int) -> list[str]:
    os.environ.update(PEER_DSN=dsn, PEER_SIO_REDIS=redis_url, PEER_STORAGE=str(storage), PEER_NICE="0")
    import _celery_peer

    _celery_peer._start_child()

    async def insert() -> list[str]:
        connection = await asyncpg.connect(dsn)
        try:
            ids = [str(uuid.uuid4()) for _ in range(jobs)]
            await connection.executemany(
                "INSERT INTO peer_jobs (id, project_id, user_id, status, seq, attempt, progress, options, "
                "project_name, created_at, updated_at) VALUES ($1, $2, $3, 'pending', 0, 0, 0, '{}', "
                "'Empty project', now(), now())", [(job_id, project_id, user_id) for job_id in ids])
            return ids
        finally:
            await connection.close()

    ids = asyncio.run(insert())
    for job_id in ids[:20]:
        _celery_peer.peer_export(job_id)
    ids = ids[20:]
    threads = ThreadCpu()
    threads.start()
    cpu, wall = time.process_time(), time.perf_counter()
    for job_id in ids:
        _celery_peer.peer_export(job_id)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    threads.stop()
    n = len(ids)
    _celery_peer._child["db"].close()
    return [f"-- peer task: {n} jobs one at a time: {wall / n * 1000:.2f} ms wall, {cpu / n * 1000:.2f} ms CPU per job",
            "  CPU per job by thread: " + ", ".join(
                f"{name} {seconds / n * 1000:.2f} ms" for name, seconds in sorted(threads.used.items(),
                                                                               key=lambda i: -i[1]) if seconds > 0),
            "  4 statements per job (SELECT job, UPDATE processing, SELECT images, UPDATE completed), autocommit"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    header(f"One worker process's cost per export, {args.jobs} empty-project exports a side")
    print(f"  load average {', '.join(f'{value:.2f}' for value in os.getloadavg())}", flush=True)
    name = f"exportd_bench_{uuid.uuid4().hex[:10]}"
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    host_part = PG_ADMIN_DSN.split("://", 1)[1].rsplit("/", 1)[0]
    url, dsn = f"postgresql+asyncpg://{host_part}/{name}", f"postgresql://{host_part}/{name}"
    port = free_port()
    redis = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",
                              "127.0.0.1", "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        with tempfile.TemporaryDirectory(prefix="exportd-worker-path-") as folder:
            root = Path(folder)
            asyncio.run(upgrade(url))
            user_id, project_id, ids = asyncio.run(seed(url, args.jobs + 20))
            asyncio.run(_execute(dsn, "CREATE TABLE peer_jobs (LIKE export_jobs INCLUDING ALL)"))
            settings = Settings(database_url=url, data_dir=root / "data", storage_dir=root / "storage",
                                broker_url=f"redis://127.0.0.1:{port}/0", secret_key="bench-" + "k" * 40)
            for line in run_exportd(settings, ids, args.profile):
                print(line)
            for line in run_peer(dsn, f"redis://127.0.0.1:{port}/2", root / "peer", user_id, project_id,
                                 args.jobs + 20):
                print(line)
    finally:
        redis.kill()
        redis.wait()
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    print(f"  load average {', '.join(f'{value:.2f}' for value in os.getloadavg())}")


async def _execute(dsn: str, statement: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


if __name__ == "__main__":
    main()
