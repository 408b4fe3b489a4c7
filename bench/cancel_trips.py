"""Cancel trips: what one cancel costs the store on PostgreSQL, round trip by round trip.

Method. A fresh PostgreSQL database, migrated; one user, one project. For each
of ``--cancels`` rounds a job is created and claimed (not counted), then
cancelled through ``Services.cancel``, the use case behind
``POST …/cancel`` and the socket's ``export:cancel``, exactly as an API node
runs it (on PostgreSQL ``Store.cancel_as_owner``, one statement, see
``store/direct.py``; the relay and other listeners left out). Every call that
makes asyncpg wait for the server (``BEGIN``, a
statement's prepare, a prepared statement's execution, ``COMMIT``, a plain
query) is counted and timed while the cancel runs. Printed: the round trips
of one cancel, in order, with the time of each (p50 over the rounds), the
round trips per cancel, and the whole ``Services.cancel`` call's p50/p99.
There is no target; ``remote_cancel.py`` judges the whole path.

Run: ``.venv/bin/python bench/cancel_trips.py [--cancels 300]``
Needs PostgreSQL (``EXPORTD_TEST_PG_DSN``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from _harness import header, spread_line
from cluster_scaling import PG_ADMIN_DSN, admin

from exportd.domain.requests import Credentials, ExportRequest
from exportd.services import Services
from exportd.storage import LocalStorage
from exportd.store.migrate import upgrade
from exportd.store.uow import Store
from exportd.testing import test_settings

TRIPS: list[tuple[str, float]] = []  #: (what, seconds) of the round trips made while counting
COUNTING = False
_DEPTH = 0  #: a counted call inside another (BEGIN runs ``execute``) is the same round trip


def _label(kind: str, query: str | None) -> str:
    if not query:
        return kind
    words = " ".join(query.split())
    return f"{kind}: {words[:70]}"


def _counted(kind: str, method, query_of=lambda args: None):
    async def wrapper(self, *args, **kwargs):
        global _DEPTH
        if not COUNTING or _DEPTH:
            return await method(self, *args, **kwargs)
        started = time.perf_counter()
        _DEPTH += 1
        try:
            return await method(self, *args, **kwargs)
        finally:
            _DEPTH -= 1
            TRIPS.append((_label(kind, query_of((self, *args))), time.perf_counter() - started))
    return wrapper


@contextlib.contextmanager
def counting_round_trips():
    """Count every asyncpg call that waits for the server (one round trip each)."""
    from asyncpg import connection, prepared_stmt, transaction

    patched = [
        (transaction.Transaction, "start", "BEGIN", lambda a: None),
        (transaction.Transaction, "commit", "COMMIT", lambda a: None),
        (transaction.Transaction, "rollback", "ROLLBACK", lambda a: None),
        (connection.Connection, "prepare", "prepare", lambda a: a[1]),
        (connection.Connection, "execute", "execute", lambda a: a[1]),
        (connection.Connection, "fetch", "fetch", lambda a: a[1]),
        (connection.Connection, "fetchrow", "fetchrow", lambda a: a[1]),
        (connection.Connection, "fetchval", "fetchval", lambda a: a[1]),
        (prepared_stmt.PreparedStatement, "fetch", "run", lambda a: a[0].get_query()),
        (prepared_stmt.PreparedStatement, "fetchrow", "run", lambda a: a[0].get_query()),
    ]
    originals = [(cls, name, getattr(cls, name)) for cls, name, _, _ in patched]
    for cls, name, kind, query_of in patched:
        setattr(cls, name, _counted(kind, getattr(cls, name), query_of))
    try:
        yield
    finally:
        for cls, name, method in originals:
            setattr(cls, name, method)


async def main() -> None:
    global COUNTING
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cancels", type=int, default=300)
    args = parser.parse_args()
    header(f"Cancel trips: {args.cancels} cancels through Services.cancel on PostgreSQL, round trips counted")
    name = f"exportd_bench_{uuid.uuid4().hex[:10]}"
    await admin(f'CREATE DATABASE "{name}"')
    host_part = PG_ADMIN_DSN.split("://", 1)[1].rsplit("/", 1)[0]
    try:
        with tempfile.TemporaryDirectory(prefix="exportd-cancel-trips-") as folder:
            settings = test_settings(Path(folder), database_url=f"postgresql+asyncpg://{host_part}/{name}").resolved()
            await upgrade(settings.database_url)
            store = Store(settings.database_url)
            try:
                services = Services(store, LocalStorage(settings.storage_dir), settings)
                user = await services.register(Credentials(email="bench@example.com", password="correct horse"))
                project = await services.create_project(user.id, "Cancel trips")
                options = ExportRequest().options.to_json()
                per_cancel: list[list[tuple[str, float]]] = []
                whole: list[float] = []
                with counting_round_trips():
                    for round_ in range(args.cancels + 20):  # the first 20 warm the caches up
                        job = await store.apply(lambda repo: repo.create_job(
                            project_id=project.id, user_id=user.id, options=options, project_name="Cancel trips"))
                        await store.apply(lambda repo, job=job: repo.claim(job.id, lease_seconds=60))
                        TRIPS.clear()
                        COUNTING = True
                        started = time.perf_counter()
                        cancelled = await services.cancel(user.id, project.id, job.id)
                        elapsed = time.perf_counter() - started
                        COUNTING = False
                        assert cancelled.status == "cancelled"
                        if round_ >= 20:
                            per_cancel.append(list(TRIPS))
                            whole.append(elapsed)
            finally:
                await store.close()
    finally:
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    shape = print_trips("cancel", per_cancel, whole, label="Services.cancel")
    print(f"  {shape} round trips per cancel")


def print_trips(noun: str, per_call: list[list[tuple[str, float]]], whole: list[float], *, label: str) -> int:
    """Print the round trips the calls made, each with its median time, and the calls' spread; return the
    number of round trips most calls made."""
    counts = Counter(len(trips) for trips in per_call)
    shape = max(counts, key=counts.get)
    typical = [trips for trips in per_call if len(trips) == shape]
    print(f"  round trips per {noun}: {dict(sorted(counts.items()))} (count: {noun}s)")
    for position, (what, _) in enumerate(typical[0]):
        p50 = statistics.median(trips[position][1] for trips in typical)
        print(f"    {position + 1}. {what:<80} p50 {p50 * 1000:6.3f} ms")
    print(spread_line(label, whole))
    return shape


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
