"""The unit of work: one transaction, then the events it wrote are published.

``Store.write()`` opens a write transaction and yields a Repository; when the
block ends the transaction commits and only then are its events handed to the
listeners (the socket relay, the local engine's cancel signal). On SQLite all
writes go through one connection, so they queue in the pool instead of spinning
in SQLite's busy handler; reads use their own connections (WAL mode).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from exportd.domain.events import EventRecord
from exportd.store.repository import Repository

Listener = Callable[[Sequence[EventRecord]], None]


def _sqlite_engine(url: str, *, writer: bool) -> AsyncEngine:
    engine = create_async_engine(
        url,
        poolclass=AsyncAdaptedQueuePool,
        pool_size=1 if writer else 4,
        max_overflow=0 if writer else 4,
        pool_timeout=60,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

    return engine


class Store:
    def __init__(self, database_url: str, *, public_url: str = "") -> None:
        self.database_url = database_url
        self.public_url = public_url
        if database_url.startswith("sqlite"):
            self._writer = _sqlite_engine(database_url, writer=True)
            self._reader = _sqlite_engine(database_url, writer=False)
        else:
            self._writer = self._reader = create_async_engine(database_url, pool_size=10, max_overflow=10)
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Repository]:
        async with self._writer.begin() as conn:
            repo = Repository(conn, public_url=self.public_url)
            yield repo
        if repo.events:
            self.publish(repo.events)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Repository]:
        async with self._reader.connect() as conn:
            yield Repository(conn, public_url=self.public_url)

    def publish(self, records: Sequence[EventRecord]) -> None:
        for listener in self._listeners:
            listener(records)

    async def ping(self) -> None:
        async with self.read() as repo:
            await repo.conn.exec_driver_sql("SELECT 1")

    async def close(self) -> None:
        await self._writer.dispose()
        if self._reader is not self._writer:
            await self._reader.dispose()
