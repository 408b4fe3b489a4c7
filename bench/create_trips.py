"""Create trips: what starting one export costs the store on PostgreSQL, round trip by round trip.

Method. A fresh PostgreSQL database, migrated; one user, one project, a limit
of active exports that refuses nothing (as in ``cluster_throughput.py``). Each
of ``--creates`` rounds does what ``POST /api/projects/{id}/export`` does once
its body is parsed: the access token's user (``Services.token_user_id``), then
``Services.start_export`` (``Store.apply`` over asyncpg; no listeners, so no
relay and no broker). With ``--authenticate-first`` the account is read in a
transaction of its own first (``Services.authenticate``), as the route did
before the admission's lock of the user's row took that role. Every call that
makes asyncpg wait for the server is counted and timed (see
``cancel_trips.py``). Printed: the round trips of one create, in order, with
the p50 of each, round trips per create, the whole call's p50/p99, and the CPU
time of this process per create. There is no target; ``cluster_throughput.py``
judges the whole path.

Run: ``.venv/bin/python bench/create_trips.py [--creates 300] [--authenticate-first]``
Needs PostgreSQL (``EXPORTD_TEST_PG_DSN``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
import uuid
from pathlib import Path

import cancel_trips
from _harness import header
from cancel_trips import TRIPS, counting_round_trips, print_trips
from cluster_scaling import PG_ADMIN_DSN, admin

from exportd.domain.requests import Credentials, ExportRequest
from exportd.services import Services
from exportd.storage import LocalStorage
from exportd.store.migrate import upgrade
from exportd.store.uow import Store
from exportd.testing import test_settings

WARM_UP = 20


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--creates", type=int, default=300)
    parser.add_argument("--authenticate-first", action="store_true",
                        help="read the account in a transaction of its own first, as the route used to")
    args = parser.parse_args()
    header(f"Create trips: {args.creates} starts through Services.start_export on PostgreSQL, round trips counted"
           + (" (the account read first, in its own transaction)" if args.authenticate_first else ""))
    name = f"exportd_bench_{uuid.uuid4().hex[:10]}"
    await admin(f'CREATE DATABASE "{name}"')
    host_part = PG_ADMIN_DSN.split("://", 1)[1].rsplit("/", 1)[0]
    try:
        with tempfile.TemporaryDirectory(prefix="exportd-create-trips-") as folder:
            settings = test_settings(Path(folder), database_url=f"postgresql+asyncpg://{host_part}/{name}",
                                     max_active_exports_per_user=100_000_000).resolved()
            await upgrade(settings.database_url)
            store = Store(settings.database_url)
            try:
                services = Services(store, LocalStorage(settings.storage_dir), settings)
                LocalStorage(settings.storage_dir).exports.mkdir(parents=True, exist_ok=True)
                user = await services.register(Credentials(email="bench@example.com", password="correct horse"))
                project = await services.create_project(user.id, "Create trips")
                token, _ = services.tokens.access_token(user.id)
                per_create: list[list[tuple[str, float]]] = []
                whole: list[float] = []
                cpu = 0.0
                with counting_round_trips():
                    for round_ in range(args.creates + WARM_UP):
                        TRIPS.clear()
                        cancel_trips.COUNTING = True
                        started, started_cpu = time.perf_counter(), time.process_time()
                        user_id = services.token_user_id(token)
                        if args.authenticate_first:
                            user_id = (await services.authenticate(token)).id
                        job, created = await services.start_export(user_id, project.id, ExportRequest())
                        elapsed, used = time.perf_counter() - started, time.process_time() - started_cpu
                        cancel_trips.COUNTING = False
                        assert created and job.status == "pending"
                        if round_ >= WARM_UP:
                            per_create.append(list(TRIPS))
                            whole.append(elapsed)
                            cpu += used
            finally:
                await store.close()
    finally:
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    shape = print_trips("create", per_create, whole, label="create")
    print(f"  {shape} round trips per create; CPU of this process {cpu / len(per_create) * 1000:.2f} ms per create")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
