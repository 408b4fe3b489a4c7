"""SQLite's writer: one thread, one connection, queued transactions committed in groups.

Every write transaction in the process goes through here, in the order it was
submitted. When several wait, the writer runs them back to back inside one
``BEGIN IMMEDIATE … COMMIT`` (each still made of its own guarded statements,
in order) and wakes the event loop once for the whole group. If any of them
raises, the group is rolled back and each transaction runs again alone, so a
caller always gets exactly its own transaction's outcome: a group changes how
often SQLite commits, never what a transaction sees or does.
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
    _queue: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    _thread: threading.Thread | None = None

    async def run(self, work: Callable[[Repository], Any], events: list[EventRecord]) -> Any:
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="exportd-sqlite-writer", daemon=True)
            self._thread.start()
        loop = asyncio.get_running_loop()
        pending = _Pending(work, events, loop.create_future(), loop)
        self._queue.put(pending)
        # shielded: a caller cancelled while it waits still leaves its transaction done, in order
        return await asyncio.shield(pending.future)

    async def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._thread.join)
            self._thread = None

    # -- the writer thread ------------------------------------------------------

    def _serve(self) -> None:
        connection: Connection | None = None
        try:
            stopping = False
            while not stopping:
                group = [self._queue.get()]
                if group[0] is None:
                    return
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
                    if connection is None:
                        connection = self.engine.connect()
                except Exception as error:  # the database cannot be opened: each caller hears it, none waits
                    for pending in group:
                        pending.error = error
                else:
                    self._commit(connection, group)
                    self.group_sizes[len(group)] += 1
                _settle_from_thread(group)
        finally:
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
