"""The unit of work: one transaction, in one trip, then the events it wrote are published.

``await store.apply(work)`` runs ``work(repo)``, a synchronous function of a
Repository, as one write transaction where the connection lives, and returns
its result; ``await store.query(work)`` does the same for reads. When a write
transaction commits, and only then, the events it wrote are handed to the
listeners (the local engine's cancel signal, the socket relay, metrics). An
exception rolls the transaction back and publishes nothing; domain errors
raised inside ``work`` reach the caller unchanged.

Where the connection lives depends on the database:

* SQLite: a synchronous SQLAlchemy engine used from threads. All writes run in
  ONE thread on ONE connection, in order (``writer.py``, which commits queued
  transactions in groups), so they queue instead of spinning in SQLite's busy
  handler (which sleeps up to 100 ms); reads use a small pool of their own (WAL
  mode). A whole transaction is one hop to that thread; one applied with
  ``inline=True`` (a cancel) runs on the event loop itself when the writer is
  idle, with no hop at all.
* PostgreSQL (or any async driver): an AsyncEngine; the same synchronous work
  runs through ``AsyncConnection.run_sync``.

The queries are the same SQLAlchemy Core statements on both.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import types
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import QueuePool
from sqlalchemy.util import greenlet_spawn

from exportd.domain.errors import StoreUnavailable
from exportd.domain.events import EventRecord
from exportd.faults import store_fault
from exportd.store.direct import DirectStatements
from exportd.store.repository import Repository, new_id
from exportd.store.writer import GroupWriter

log = logging.getLogger(__name__)
T = TypeVar("T")
READERS = 4
Listener = Callable[[Sequence[EventRecord]], Awaitable[None] | None]
Work = Callable[[Repository], T]


class _ThreadedSqlite:
    """Synchronous SQLite connections, used from threads so the event loop never blocks."""

    def __init__(self, url: str, public_url: str) -> None:
        sync_url = url.replace("sqlite+aiosqlite://", "sqlite://", 1)
        self.public_url = public_url
        self.writer = _sqlite_engine(sync_url, writer=True)
        self.reader = _sqlite_engine(sync_url, writer=False)
        self.write_queue = GroupWriter(self.writer, public_url)
        self.read_threads = ThreadPoolExecutor(READERS, thread_name_prefix="exportd-sqlite-reader")
        self._held = threading.local()  #: each thread keeps its connection open between transactions

    async def run(self, work: Work, *, write: bool, events: list[EventRecord], inline: bool = False) -> Any:
        if write:
            if inline:
                done, result = self.write_queue.try_inline(work, events)
                if done:
                    return result
            return await self.write_queue.run(work, events)

        def transaction() -> Any:
            connection = getattr(self._held, "connection", None)
            if connection is None or connection.closed:
                connection = self._held.connection = self.reader.connect()
            with connection.begin():
                return work(Repository(connection, public_url=self.public_url, events=events))

        return await asyncio.get_running_loop().run_in_executor(self.read_threads, transaction)

    async def close(self) -> None:
        await self.write_queue.close()
        self.writer.dispose()
        loop = asyncio.get_running_loop()
        barrier = threading.Barrier(READERS)  # every reader thread closes its own connection
        await asyncio.gather(*(loop.run_in_executor(self.read_threads, self._release, barrier)
                               for _ in range(READERS)))
        self.read_threads.shutdown(wait=True)
        self.reader.dispose()

    def _release(self, barrier: threading.Barrier) -> None:
        connection = getattr(self._held, "connection", None)
        if connection is not None:
            connection.close()
            self._held.connection = None
        barrier.wait(timeout=10)


class _AsyncDriver:
    """An async driver (asyncpg): the same Repository work, run through ``run_sync``.

    `announce`: on PostgreSQL, a transaction's COMMIT also announces the progress events it wrote
    (``announcing.py``); off where nobody listens (the embedded shape)."""

    def __init__(self, url: str, public_url: str, *, announce: bool = True) -> None:
        self.public_url = public_url
        connect_args: dict[str, Any] = {}
        if announce and url.startswith("postgresql"):
            from exportd.store.announcing import AnnouncingConnection

            connect_args["connection_class"] = AnnouncingConnection
        self.engine: AsyncEngine = create_async_engine(url, pool_size=10, max_overflow=10, connect_args=connect_args)
        event.listen(self.engine.sync_engine, "handle_error", _invalidate_broken_connections)
        self.direct = DirectStatements(self.engine, public_url) if self.engine.dialect.name == "postgresql" else None

    async def run(self, work: Work, *, write: bool, events: list[EventRecord], inline: bool = False) -> Any:
        """The whole transaction, from the pool's checkout to its return, in ONE trip through the greenlet
        bridge: what ``AsyncConnection.run_sync`` does for the work alone, while ``async with engine.begin()``
        around it would cross the bridge again for the checkout, BEGIN, COMMIT and the return."""
        return await greenlet_spawn(self._transaction, work, events)

    def _transaction(self, work: Work, events: list[EventRecord]) -> Any:
        with self.engine.sync_engine.begin() as connection:
            return work(Repository(connection, public_url=self.public_url, events=events))

    async def close(self) -> None:
        await self.engine.dispose()


def _invalidate_broken_connections(context) -> None:
    """A connection the server terminated mid-operation can leave asyncpg's protocol in a state it cannot
    leave ("cannot switch to state …; another operation is in progress", "connection was closed in the
    middle of operation") without reporting itself closed. Count those as disconnects, so the pool
    discards the connection instead of handing it out again."""
    if _BROKEN_PROTOCOL(context.original_exception):
        context.is_disconnect = True


def _BROKEN_PROTOCOL(error: BaseException) -> bool:
    name = type(error).__name__
    return name in ("InternalClientError", "InterfaceError", "ConnectionDoesNotExistError") or isinstance(
        error, ConnectionError)


class Store:
    def __init__(self, database_url: str, *, public_url: str = "", announce: bool = True) -> None:
        """`announce`: on PostgreSQL, committed progress events are announced to other processes."""
        self.database_url = database_url
        self.public_url = public_url
        if database_url.startswith("sqlite"):
            self._backend: _ThreadedSqlite | _AsyncDriver = _ThreadedSqlite(database_url, public_url)
        else:
            self._backend = _AsyncDriver(database_url, public_url, announce=announce)
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener, *, first: bool = False) -> None:
        """Hear committed events; `first`: before every listener subscribed so far (a benchmark's clock)."""
        if first:
            self._listeners.insert(0, listener)
        else:
            self._listeners.append(listener)

    async def apply(self, work: Callable[[Repository], T], *, inline: bool = False) -> T:
        """Run `work(repo)` as one write transaction; publish its events once it committed.

        `inline`: on SQLite, run it on the event loop's thread when the writer thread is idle, sparing
        the hops to that thread and back; for short transactions whose latency matters (a cancel)."""
        events: list[EventRecord] = []
        try:
            result = await self._backend.run(work, write=True, events=events, inline=inline)
        except Exception as error:
            if store_fault(error):
                log.warning("the store cannot take a transaction: %r", getattr(error, "orig", error))
                raise StoreUnavailable() from error
            raise
        if events:
            await publish_committed(self.publish(events))
        return result

    # -- a worker's hot path: one statement per transition where the database allows (see direct.py) --------

    async def queue_job(self, user_id: str, project_id: str, *, options: dict[str, Any], limit: int | None,
                        project_name: str | None) -> tuple[bool, Any]:
        """The common admission in one trip where the database allows (see direct.py): (whether the account
        exists, the queued job, committed with its event). `limit` None: no per-user limit. The job is None
        when it was not admitted here (no such project for the user, the limit reached, or no direct path on
        this database): decide it again through ``Repository``, which raises the right error."""
        direct = getattr(self._backend, "direct", None)
        if direct is None:
            return True, None
        exists, *moved = await direct.queue(user_id, project_id, job_id=new_id(), options=options, limit=limit,
                                            project_name=project_name or None)
        return exists, await self._published(*moved)

    async def _published(self, job, events: list[EventRecord]):
        """A direct statement's job, once the events it committed are handed to the listeners."""
        if events:
            await publish_committed(self.publish(events))
        return job

    async def cancel_as_owner(self, job_id: str, *, user_id: str, project_id: str):
        """The owner's cancel, committed, where the database allows one statement (see direct.py); None when it
        changed nothing there, or there is no direct path: decide it through ``Repository``."""
        direct = getattr(self._backend, "direct", None)
        if direct is None:
            return None
        return await self._published(*await direct.cancel(job_id, user_id=user_id, project_id=project_id))

    async def claim(self, job_id: str, *, lease_seconds: float):
        """`Repository.claim`, committed; None when another transition won."""
        direct = getattr(self._backend, "direct", None)
        if direct is None:
            return await self.apply(lambda repo: repo.claim(job_id, lease_seconds=lease_seconds))
        return await self._published(*await direct.claim(job_id, lease_seconds=lease_seconds))

    async def progress(self, job_id: str, attempt: int, *, progress: float, stage: str, current: int, total: int,
                       message: str, eta_seconds: float | None, lease_seconds: float, item: str | None = None):
        """`Repository.progress`, committed: the job with its lease renewed, or None when the attempt no
        longer holds it or progress would fall (nothing written, the lease not renewed)."""
        direct = getattr(self._backend, "direct", None)
        if direct is None:
            return await self.apply(lambda repo: repo.progress(
                job_id, attempt, progress=progress, stage=stage, current=current, total=total, message=message,
                eta_seconds=eta_seconds, lease_seconds=lease_seconds, item=item))
        return await self._published(*await direct.progress(
            job_id, attempt, progress=progress, stage=stage, current=current, total=total, message=message,
            eta_seconds=eta_seconds, lease_seconds=lease_seconds, item=item))

    async def complete(self, job_id: str, attempt: int, *, user_id: str, publish: Callable[[], str],
                       names: Sequence[str], export_size: int, warnings: list[str], processing_time: float):
        """`Repository.complete` under the first of `names` no other export of the user has, committed;
        None when the attempt no longer holds the job. `publish()` makes the file readable and gives its
        path, just before the transition."""
        direct = getattr(self._backend, "direct", None)
        if direct is None:
            return await self.apply(lambda repo: repo.complete(
                job_id, attempt, file_path=publish(), file_name=repo.unused_export_name(user_id, job_id, names),
                export_size=export_size, warnings=warnings, processing_time=processing_time))
        return await self._published(*await direct.complete(
            job_id, attempt, user_id=user_id, file_path=publish(), names=names, export_size=export_size,
            warnings=warnings, processing_time=processing_time))

    async def project_rows(self, project_id: str, image_ids: Sequence[str] | None):
        """The project's images (of `image_ids` only, if given) in order, and their polygons
        (image_id, id, kind, points, parent_id, class_name) in order: what an export reads."""
        direct = getattr(self._backend, "direct", None)
        if direct is not None:
            return await direct.project_rows(project_id, image_ids)

        def read(repo: Repository):
            image_rows = repo.images_of(project_id, image_ids)
            return image_rows, repo.polygons_of([row.id for row in image_rows]) if image_rows else []

        return await self.query(read)

    async def query(self, work: Callable[[Repository], T]) -> T:
        """Run `work(repo)` as one read transaction."""
        try:
            return await self._backend.run(work, write=False, events=[])
        except Exception as error:
            if store_fault(error):
                log.warning("the store cannot take a transaction: %r", getattr(error, "orig", error))
                raise StoreUnavailable() from error
            raise

    async def publish(self, records: Sequence[EventRecord]) -> None:
        """Hand committed events to each listener in turn; an async listener is awaited."""
        for listener in self._listeners:
            outcome = listener(records)
            if inspect.isawaitable(outcome):
                await outcome

    async def ping(self) -> None:
        await self.query(lambda repo: repo.ping())

    async def probe_write(self) -> None:
        """A write transaction that needs a fresh page and commits: fails as StoreUnavailable when nothing can."""
        await self.apply(lambda repo: repo.probe_write())

    async def close(self) -> None:
        await self._backend.close()


async def publish_committed(publishing: Coroutine[Any, Any, None]) -> None:
    """Run the publishing of committed events in the caller, up to the first point where it waits;
    from there, if it ever waits, finish it in a task of its own, shielded from the caller's
    cancellation: committed events go out whatever happens to the caller.

    In a task from the start (``asyncio.shield(publishing)``), every commit cost two turns of the
    event loop before its caller resumed (the task's start, then the caller's wake-up), each a wait
    behind every other ready callback: 11 ms at p99 for a cancel under 80 exporting users. Most
    publishing never waits (the engine's stop signal and the metrics are plain calls; the relay
    waits only when sockets must be written to), so it now costs no turn at all.
    """
    try:
        waiting_for = publishing.send(None)
    except StopIteration:
        return
    await asyncio.shield(asyncio.ensure_future(_finish(publishing, waiting_for)))


async def _finish(publishing: Coroutine[Any, Any, None], waiting_for: Any) -> None:
    await _resume(publishing, waiting_for)


@types.coroutine
def _resume(coroutine: Coroutine[Any, Any, None], waiting_for: Any):
    """Go on with a coroutine that was started elsewhere and is waiting for `waiting_for` (what it
    yielded): yield that to the task running us, and pass back what the task sends or throws."""
    while True:
        try:
            sent = yield waiting_for
        except BaseException as error:
            try:
                waiting_for = coroutine.throw(error)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                waiting_for = coroutine.send(sent)
            except StopIteration as stop:
                return stop.value


def _sqlite_engine(url: str, *, writer: bool) -> Engine:
    engine = create_engine(
        url,
        poolclass=QueuePool,
        pool_size=1 if writer else READERS,
        max_overflow=0,
        pool_timeout=60,
        connect_args={"check_same_thread": False, "timeout": 10},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    begin = "BEGIN IMMEDIATE" if writer else "BEGIN"

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        conn.connection.driver_connection.execute(begin)  # straight to the driver: see prepared.py

    return engine
