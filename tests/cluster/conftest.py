"""The cluster tier: real `exportd serve` and `exportd worker` processes on PostgreSQL and Redis.

A cluster is started with ``deploy/cluster.py``, the script docs/deploy.md tells
an operator to run: 2 API nodes and 2 workers on loopback ports, one fresh
PostgreSQL database, and a Redis server of the test's own (on a free port, so a
test may restart it without touching anyone else's). Holds are armed through
an API node's ``/api/testing/holds`` and kept in that Redis, where the workers
read them.

Without PostgreSQL, redis-server or the deploy script the tier is skipped,
except under CI (``CI=true``), where that is a failure. The 200-round race is
marked ``stress`` (``make stress``); a CI-sized slice of it runs by default.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.cluster.support import PG_ADMIN_DSN, Cluster, RedisServer, database


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} (required under CI)")
    pytest.skip(what)


@pytest.fixture(scope="session")
def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        _missing("redis-server is not installed (apt-get install redis-server)")
    return found


@pytest.fixture(scope="session")
def postgres() -> str:
    import asyncio

    import asyncpg

    async def probe() -> None:
        connection = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        await connection.close()

    try:
        asyncio.run(probe())
    except Exception as error:  # noqa: BLE001 - any failure to reach PostgreSQL
        _missing(f"PostgreSQL not reachable at {PG_ADMIN_DSN}: {error}")
    return PG_ADMIN_DSN


def _start(tmp_path, redis_binary: str, **settings: str) -> Iterator[Cluster]:
    redis = RedisServer.start(redis_binary, tmp_path / "redis")
    try:
        with database() as url:
            cluster = Cluster.start(tmp_path / "cluster", database_url=url, redis=redis, **settings)
            try:
                yield cluster
            finally:
                cluster.stop()
    finally:
        redis.stop()


@pytest.fixture(scope="session")
def shared_cluster(tmp_path_factory, postgres, redis_binary) -> Iterator[Cluster]:
    yield from _start(tmp_path_factory.mktemp("shared-cluster"), redis_binary)


@pytest.fixture
def cluster(shared_cluster: Cluster) -> Iterator[Cluster]:
    """The cluster the non-destructive tests share (each test uses users of its own); nothing a test
    armed stays held after it."""
    yield shared_cluster
    shared_cluster.release_all_holds()


@pytest.fixture
def fresh_cluster(tmp_path, postgres, redis_binary) -> Iterator[Cluster]:
    """A cluster of the test's own, with short leases, for tests that kill its processes."""
    yield from _start(tmp_path, redis_binary, EXPORTD_LEASE_SECONDS="2", EXPORTD_PENDING_RESEND_SECONDS="1.5",
                      EXPORTD_JANITOR_INTERVAL_SECONDS="1", EXPORTD_PIPELINE_ITEM_DELAY_SECONDS="0.05")


@pytest.fixture
def long_lease_cluster(tmp_path, postgres, redis_binary) -> Iterator[Cluster]:
    """A cluster of the test's own whose leases outlast the test: no job there is handed on by the reaper."""
    yield from _start(tmp_path, redis_binary, EXPORTD_LEASE_SECONDS="300", EXPORTD_JANITOR_INTERVAL_SECONDS="1",
                      EXPORTD_PIPELINE_ITEM_DELAY_SECONDS="0.05")


@pytest.fixture
def signals_only_cluster(tmp_path, postgres, redis_binary) -> Iterator[Cluster]:
    """A cluster of the test's own whose workers look at the store only every 30 s (no progress write, no
    lease renewal, no store check sooner) and whose janitor sweeps every 300 s: a running export stops
    within seconds only by the stop signal its worker hears."""
    yield from _start(tmp_path, redis_binary, EXPORTD_STORE_CHECK_SECONDS="30", EXPORTD_PROGRESS_INTERVAL_SECONDS="30",
                      EXPORTD_LEASE_SECONDS="300", EXPORTD_JANITOR_INTERVAL_SECONDS="300",
                      EXPORTD_PIPELINE_ITEM_DELAY_SECONDS="0.5")


@pytest.fixture
def short_limit_cluster(tmp_path, postgres, redis_binary) -> Iterator[Cluster]:
    """A cluster of the test's own whose exports may run 3 s."""
    yield from _start(tmp_path, redis_binary, EXPORTD_JOB_TIMEOUT_SECONDS="3")
