"""A store that cannot take writes, or cannot be reached, says so as StoreUnavailable, on both stores.

The errors are the databases' own: SQLite's "attempt to write a readonly
database" (``PRAGMA query_only``) and PostgreSQL's read-only transaction
(SQLSTATE 25006), met inside the same ``Store.apply`` every write goes through.
"""

from __future__ import annotations

import asyncio

import pytest

from exportd.domain.errors import StoreUnavailable
from exportd.store.uow import Store


async def test_a_write_the_database_refuses_is_store_unavailable_and_leaves_nothing(world, backend):
    store = world.runtime.store

    def sign_up_read_only(repo):
        if backend == "postgres":
            repo.conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            repo.add_user("readonly@example.com", "hash")
            return
        repo.conn.exec_driver_sql("PRAGMA query_only = ON")  # the connection's setting: off again below
        try:
            repo.add_user("readonly@example.com", "hash")
        finally:
            repo.conn.exec_driver_sql("PRAGMA query_only = OFF")

    with pytest.raises(StoreUnavailable) as refused:
        await store.apply(sign_up_read_only)
    await store.probe_write()  # the next write goes through
    stored = await store.query(lambda repo: repo.user_by_email("readonly@example.com"))

    assert refused.value.code == "SERVICE_UNAVAILABLE" and refused.value.retry_after > 0
    assert "readonly" not in refused.value.message and "/" not in refused.value.message
    assert stored is None


async def test_a_database_that_cannot_be_reached_is_store_unavailable(backend):
    if backend == "sqlite":
        url = "sqlite+aiosqlite:////nonexistent-folder/for/exportd.db"
    else:
        url = "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"  # nothing listens on port 1
    store = Store(url)
    try:
        with pytest.raises(StoreUnavailable):
            await asyncio.wait_for(store.ping(), 20)
        with pytest.raises(StoreUnavailable):
            await asyncio.wait_for(store.probe_write(), 20)  # a writer that cannot connect still answers
    finally:
        await store.close()
