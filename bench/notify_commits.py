"""NOTIFY and commit rate: how many small write transactions per second PostgreSQL commits, with and without NOTIFY.

Why. Every stored event was announced by a trigger's ``pg_notify`` inside the
transaction that writes it (migration 0004); since migration 0005 progress
events are announced with their COMMIT instead (in a transaction of their own
that PostgreSQL runs right after the commit). PostgreSQL serialises the commits
of transactions that NOTIFY: at pre-commit such a transaction takes a lock
held until its end, so that notifications enter the queue in commit order,
and it holds that lock while its commit record is flushed to disk. The commits
of one cluster's events therefore cannot share a WAL flush (group commit), and
their rate is bounded by one flush after the other. This script measures that
bound on the machine it runs on.

Method. A fresh database with one table. ``--connections`` asyncpg connections
(default 20, the store's pool) each commit, as fast as they can, for
``--seconds`` per mode, a transaction that inserts one row, and:

* ``none``: nothing else (group commit applies);
* ``in-tx``: ``SELECT pg_notify(...)`` inside the same transaction (what the
  trigger does for every event but progress);
* ``after``: ``SELECT pg_notify(...)`` right after the commit, in a transaction
  of its own that writes nothing (no commit record to flush), one more round trip;
* ``with-commit``: ``COMMIT; SELECT pg_notify(...)`` sent as one simple query,
  which PostgreSQL runs as the commit, then a transaction of its own that
  writes nothing: what the store does for progress events (``announcing.py``).

The modes alternate (``--rounds`` times). Printed: commits/s for each mode and
round, with the load average; never asserts anything.

Run: ``.venv/bin/python bench/notify_commits.py [--connections 20] [--seconds 4] [--rounds 2]``
Needs PostgreSQL (``EXPORTD_TEST_PG_DSN``, default postgresql://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import asyncpg
from _harness import header
from cluster_scaling import scratch_database

MODES = ("none", "in-tx", "after", "with-commit")


async def commit_loop(dsn: str, mode: str, until: float) -> int:
    connection = await asyncpg.connect(dsn)
    done = 0
    try:
        while time.monotonic() < until:
            if mode == "with-commit":
                await connection.execute("BEGIN")
                await connection.execute("INSERT INTO notify_rate(v) VALUES (1)")
                await connection.execute("COMMIT; SELECT pg_notify('notify_rate', 'an event')")
                done += 1
                continue
            async with connection.transaction():
                await connection.execute("INSERT INTO notify_rate(v) VALUES (1)")
                if mode == "in-tx":
                    await connection.execute("SELECT pg_notify('notify_rate', 'an event')")
            if mode == "after":
                await connection.execute("SELECT pg_notify('notify_rate', 'an event')")
            done += 1
    finally:
        await connection.close()
    return done


async def run(args: argparse.Namespace) -> None:
    async with scratch_database() as dsn:
        setup = await asyncpg.connect(dsn)
        await setup.execute("CREATE TABLE notify_rate(id bigserial PRIMARY KEY, v int)")
        synchronous = await setup.fetchval("SHOW synchronous_commit")
        version = await setup.fetchval("SHOW server_version")
        await setup.close()
        print(f"  PostgreSQL {version}, synchronous_commit={synchronous}, {args.connections} connections, "
              f"{args.seconds:.0f} s a mode")
        rates: dict[str, list[float]] = {mode: [] for mode in MODES}
        for _ in range(args.rounds):
            for mode in MODES:
                until = time.monotonic() + args.seconds
                began = time.monotonic()
                counts = await asyncio.gather(*(commit_loop(dsn, mode, until) for _ in range(args.connections)))
                rates[mode].append(sum(counts) / (time.monotonic() - began))
        for mode in MODES:
            print(f"  {mode:<11} " + ", ".join(f"{rate:7.0f} commits/s" for rate in rates[mode]))
        print(f"  load average: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    header("commits per second on PostgreSQL: without NOTIFY, NOTIFY in the transaction, NOTIFY after it, "
           "NOTIFY sent with the COMMIT")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
