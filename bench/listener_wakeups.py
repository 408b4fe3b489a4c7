"""What an idle LISTEN connection costs PostgreSQL: CPU per notifying commit against the number of listeners.

Why. PostgreSQL (15 here) signals every connection of a database that LISTENs
on any channel whenever a transaction that sent a NOTIFY commits; each such
backend wakes up, reads the notification queue and, finding nothing on its own
channel, goes back to sleep. An exportd worker used to keep a LISTEN connection
(on ``exportd_stops``) in each prefork child, so each event stored in the
cluster woke ``--concurrency`` x workers backends that almost never had
anything to hear; a worker process now keeps one, in its main process
(``engine/stops.py``). This script measures what each such listener costs.

Method. A fresh database with one table. ``--listeners`` (a list, default
0,1,2,4,8,16) asyncpg connections LISTEN on a channel nobody notifies (the
baseline, 0, in the same run); one connection then commits ``--commits``
transactions one after the other, each an INSERT and a ``pg_notify`` on
another channel, as the trigger does for a stored event. Stamped, before the
first commit and after the last: the CPU time of the whole PostgreSQL server
(``/proc``, every backend, the listeners' included) and of the listeners'
backends alone. The listener counts alternate in order and reversed,
``--rounds`` times. Printed, per count: PostgreSQL's CPU per commit and its
ratio to the baseline, the listeners' CPU per commit and per listener, and the
commits per second; never asserts anything.

Run: ``.venv/bin/python bench/listener_wakeups.py [--commits 3000] [--rounds 3] [--listeners 0,1,2,4,8,16]``
Needs PostgreSQL on this machine (``EXPORTD_TEST_PG_DSN``, default postgresql://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

import asyncpg
from _harness import Groups, cpu_seconds, header, postgres_pids
from cluster_scaling import scratch_database


async def measure(dsn: str, listeners: int, commits: int) -> dict[str, float]:
    idle = [await asyncpg.connect(dsn) for _ in range(listeners)]
    committer = await asyncpg.connect(dsn)
    try:
        for connection in idle:
            await connection.add_listener("exportd_bench_idle", lambda *_: None)
        backends = [connection.get_server_pid() for connection in idle]
        server = Groups({"postgres": postgres_pids()})
        await committer.execute("SELECT 1")
        before, listened, began = server.read()["postgres"], cpu_seconds(backends), time.perf_counter()
        for _ in range(commits):
            async with committer.transaction():
                await committer.execute("INSERT INTO wakeups(v) VALUES (1)")
                await committer.execute("SELECT pg_notify('exportd_bench_events', 'an event')")
        wall = time.perf_counter() - began
        await asyncio.sleep(0.05)  # the last signals' wake-ups, if any are still running
        return {"server": (server.read()["postgres"] - before) / commits,
                "listeners": (cpu_seconds(backends) - listened) / commits, "rate": commits / wall}
    finally:
        for connection in [*idle, committer]:
            await connection.close()


async def run(args: argparse.Namespace) -> None:
    if not postgres_pids():
        raise SystemExit("this benchmark reads PostgreSQL's CPU from /proc: the server must run on this machine")
    async with scratch_database() as dsn:
        setup = await asyncpg.connect(dsn)
        await setup.execute("CREATE TABLE wakeups(id bigserial PRIMARY KEY, v int)")
        version = await setup.fetchval("SHOW server_version")
        await setup.close()
        counts = args.listeners
        print(f"  PostgreSQL {version}; {args.commits} commits a measurement, one at a time; "
              f"listener counts {counts}, {args.rounds} rounds")
        await measure(dsn, 0, min(500, args.commits))  # warm-up
        results: dict[int, list[dict[str, float]]] = {count: [] for count in counts}
        for round_ in range(args.rounds):
            for count in (counts if round_ % 2 == 0 else list(reversed(counts))):
                results[count].append(await measure(dsn, count, args.commits))
        base = statistics.median(r["server"] for r in results[counts[0]])
        print(f"  {'listeners':>9}  {'PostgreSQL µs/commit':>22}  {'vs ' + str(counts[0]):>8}  "
              f"{'listeners µs/commit':>20}  {'µs/listener':>11}  {'commits/s':>9}")
        for count in counts:
            server = statistics.median(r["server"] for r in results[count])
            listened = statistics.median(r["listeners"] for r in results[count])
            rate = statistics.median(r["rate"] for r in results[count])
            each = f"{listened / count * 1e6:11.1f}" if count else f"{'-':>11}"
            rounds = "/".join(f"{r['server'] * 1e6:.0f}" for r in results[count])
            print(f"  {count:>9}  {server * 1e6:8.1f} ({rounds:>11})  {server / base:7.2f}x  "
                  f"{listened * 1e6:20.1f}  {each}  {rate:9.0f}")
        print(f"  load average: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--listeners", type=lambda text: [int(n) for n in text.split(",")],
                        default=[0, 1, 2, 4, 8, 16])
    args = parser.parse_args()
    header("PostgreSQL's CPU per notifying commit against the number of idle LISTEN connections")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
