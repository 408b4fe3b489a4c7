"""SQLite's writer: one thread, one connection, queued transactions committed in groups.

Every write transaction in the process goes through here, in the order it was
submitted. When several wait, the writer runs them back to back inside one
``BEGIN IMMEDIATE … COMMIT`` (each still made of its own guarded statements,
in order) and wakes the event loop once for the whole group. If any of them
raises, the group is rolled back and each transaction runs again alone, so a
caller always gets exactly its own transaction's outcome: a group changes how
often SQLite commits, never what a transaction sees or does.

A transaction that must not wait for thread hops (a cancel) can ask to run
*inline* (`try_inline`): on the caller's own thread, on the writer's
connection, but only when the writer has nothing to do (every write submitted
from the event loop has been settled, and the connection is free). Then no
earlier write is waiting, so the order of writes holds; otherwise it queues
like any other. It spares the hop to the writer thread and back, each a wake-up
by the OS and a wait for the GIL against the export pipelines (see
docs/decisions.md), and costs the event loop the transaction's own time.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine

from exportd.domain.events import EventRecord
from exportd.store.repository import Repository

MAX_GROUP = 64


@dataclass
class _Pending:
    work: Callable[[Repository], Any]
    events: list[EventRecord]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    result: Any = None
    error: BaseException | None = None


@dataclass
class GroupWriter:
    engine: Engine
    public_url: str = ""
    group_sizes: Counter[int] = field(default_factory=Counter)  #: how many groups of each size committed
    inline_commits: int = 0  #: transactions run by `try_inline` on the caller's thread
    _queue: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    _thread: threading.Thread | None = None
    _connection: Connection | None = None  #: opened by the writer thread, used by one thread at a time
    _using: threading.Lock = field(default_factory=threading.Lock)  #: held while a thread uses the connection
    _unsettled: int = 0  #: writes submitted through `run` whose caller has not been answered yet

    def try_inline(self, work: Callable[[Repository], Any], events: list[EventRecord]) -> tuple[bool, Any]:
        """Run `work` as one transaction here and now if the writer is idle: `(True, result)`; else
        `(False, None)` and nothing ran. Call it from the event loop whose writes go through `run`."""
        connection = self._connection
        if self._unsettled or connection is None or not self._using.acquire(blocking=False):
            return False, None
        try:
            if self._connection is not connection:  # closed meanwhile
                return False, None
            try:
                with connection.begin():
                    result = work(Repository(connection, public_url=self.public_url, events=events))
            except BaseException:
                events.clear()
                raise
            self.inline_commits += 1
            return True, result
        finally:
            self._using.release()

    async def run(self, work: Callable[[Repository], Any], events: list[EventRecord]) -> Any:
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="exportd-sqlite-writer", daemon=True)
            self._thread.start()
        loop = asyncio.get_running_loop()
        pending = _Pending(work, events, loop.create_future(), loop)
        self._unsettled += 1
        pending.future.add_done_callback(self._answered)
        self._queue.put(pending)
        # shielded: a caller cancelled while it waits still leaves its transaction done, in order
        return await asyncio.shield(pending.future)

    def _answered(self, _future: asyncio.Future) -> None:
        self._unsettled -= 1

    async def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._thread.join)
            self._thread = None

    # -- the writer thread ------------------------------------------------------

    def _serve(self) -> None:
        try:
            stopping = False
            while not stopping:
                group = [self._queue.get()]
                if group[0] is None:
                    return
                with self._using:
                    while len(group) < MAX_GROUP:
                        try:
                            pending = self._queue.get_nowait()
                        except queue.Empty:
                            break
                        if pending is None:
                            stopping = True
                            break
                        group.append(pending)
                    try:
                        if self._connection is None:
                            self._connection = self.engine.connect()
                    except Exception as error:  # the database cannot be opened: each caller hears it, none waits
                        for pending in group:
                            pending.error = error
                    else:
                        self._commit(self._connection, group)
                        self.group_sizes[len(group)] += 1
                _settle_from_thread(group)
        finally:
            with self._using:
                connection, self._connection = self._connection, None
                if connection is not None:
                    connection.close()

    def _commit(self, connection: Connection, group: list[_Pending]) -> None:
        if len(group) > 1:
            try:
                with connection.begin():
                    for pending in group:
                        pending.result = pending.work(self._repository(connection, pending))
                return
            except BaseException:  # one of them failed: give each its own transaction
                for pending in group:
                    pending.result = None
                    pending.events.clear()
        for pending in group:
            try:
                with connection.begin():
                    pending.result = pending.work(self._repository(connection, pending))
            except BaseException as error:
                pending.error = error
                pending.events.clear()

    def _repository(self, connection: Connection, pending: _Pending) -> Repository:
        return Repository(connection, public_url=self.public_url, events=pending.events)


def _settle_from_thread(group: list[_Pending]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[_Pending]] = defaultdict(list)
    for pending in group:
        by_loop[pending.loop].append(pending)
    for loop, settled in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, settled)
        except RuntimeError:  # that loop is closed: nobody waits any more
            pass


def _settle(group: list[_Pending]) -> None:
    for pending in group:
        if pending.future.done():
            continue
        if pending.error is not None:
            pending.future.set_exception(pending.error)
        else:
            pending.future.set_result(pending.result)
