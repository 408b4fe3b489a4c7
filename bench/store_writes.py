"""Store writes: one export's three transactions, prepared against SQLAlchemy's own execution.

Setup. A migrated SQLite file in a temporary folder, one user and one project,
and the writer's own engine (``uow._sqlite_engine(writer=True)``: WAL,
``synchronous=NORMAL``, ``BEGIN IMMEDIATE``), used from this one thread, so
nothing else competes for the GIL. One "job" is the three write transactions
an export makes, through the real ``Repository``:

* admission: ``count_active`` + ``create_job`` (INSERT … RETURNING, queue
  position, the ``export:queued`` event row);
* claim: the guarded UPDATE … RETURNING, the duration estimate, the
  ``export:started`` event row;
* completion: the fenced UPDATE … RETURNING and the ``export:completed`` event
  row.

Two ways, alternating in rounds of ``--jobs`` jobs (after a warm-up of each):
``prepared`` is the production path on SQLite (``store/prepared.py``, the hot
statements on the DB-API cursor); ``sqlalchemy`` is the same Repository with
``prepared_for`` answering None, so every statement goes through
``Connection.execute``, as before the prepared path and as on PostgreSQL.
Printed: wall and thread CPU per job for each round, the medians, and the
ratio prepared / sqlalchemy (lower is better). There is no stated target:
this shows what the writer thread, which every write in the process waits
for, spends per export.

Run: ``.venv/bin/python bench/store_writes.py [--jobs 2000] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from _harness import header
from sqlalchemy import insert

from exportd.store import repository as repository_module
from exportd.store.migrate import upgrade
from exportd.store.repository import Repository, utcnow
from exportd.store.tables import projects, users
from exportd.store.uow import _sqlite_engine


def one_export(conn, user_id: str, project_id: str) -> None:
    with conn.begin():
        repo = Repository(conn, events=[])
        repo.count_active(user_id, limit=1_000_000)
        job = repo.create_job(project_id=project_id, user_id=user_id, options={}, project_name="Bench")
    with conn.begin():
        job = Repository(conn, events=[]).claim(job.id, lease_seconds=60)
    with conn.begin():
        Repository(conn, events=[]).complete(job.id, job.attempt, file_path="/tmp/x.zip", file_name="x.zip",
                                             export_size=1, warnings=[], processing_time=0.001)


def timed(conn, user_id: str, project_id: str, jobs: int, *, prepared: bool) -> tuple[float, float]:
    original = repository_module.prepared_for
    if not prepared:
        repository_module.prepared_for = lambda dialect: None
    try:
        wall, cpu = time.perf_counter(), time.thread_time()
        for _ in range(jobs):
            one_export(conn, user_id, project_id)
        return (time.perf_counter() - wall) / jobs, (time.thread_time() - cpu) / jobs
    finally:
        repository_module.prepared_for = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000, help="exports per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each way")
    args = parser.parse_args()
    header("store writes: one export's three transactions, prepared vs SQLAlchemy's execution (SQLite)")
    with tempfile.TemporaryDirectory(prefix="exportd-bench-") as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'exportd.sqlite3'}"
        asyncio.run(upgrade(url))
        engine = _sqlite_engine(url.replace("+aiosqlite", ""), writer=True)
        conn = engine.connect()
        with conn.begin():
            conn.execute(insert(users).values(id="u", email="bench@example.com", password_hash="-",
                                              created_at=utcnow()))
            conn.execute(insert(projects).values(id="p", owner_id="u", name="Bench", created_at=utcnow()))
        for prepared in (True, False):
            timed(conn, "u", "p", 200, prepared=prepared)  # warm-up
        figures: dict[str, list[tuple[float, float]]] = {"prepared": [], "sqlalchemy": []}
        for round_number in range(1, args.rounds + 1):
            for name, runs in figures.items():
                wall, cpu = timed(conn, "u", "p", args.jobs, prepared=name == "prepared")
                runs.append((wall, cpu))
                print(f"  round {round_number}  {name:<10}  {wall * 1e3:6.3f} ms wall  {cpu * 1e3:6.3f} ms CPU per export")
        conn.close()
        engine.dispose()
    medians = {name: (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
               for name, runs in figures.items()}
    for name, (wall, cpu) in medians.items():
        print(f"  median {name:<10}  {wall * 1e3:6.3f} ms wall  {cpu * 1e3:6.3f} ms CPU per export")
    ratio_wall = medians["prepared"][0] / medians["sqlalchemy"][0]
    ratio_cpu = medians["prepared"][1] / medians["sqlalchemy"][1]
    print(f"  prepared / sqlalchemy: {ratio_wall:.2f}x wall, {ratio_cpu:.2f}x CPU (lower is better)")


if __name__ == "__main__":
    main()
