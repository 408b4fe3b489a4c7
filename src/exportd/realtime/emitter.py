"""The relay from committed events to sockets: per job, in ``seq`` order, each once.

The store awaits the relay right after a transaction commits, so an event goes
out without waiting for another task to pick it up. Two actors (the API
cancelling, a worker reporting progress) can commit seq 5 and 6 and then
publish them in the other order; the relay never emits 6 before 5. When it
sees a gap it reads the missing events from the store, where they already are
(a job's ``seq`` is bumped under its row lock, so seq N+1 commits only after N),
and emits them first. Late duplicates are dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from exportd.domain.events import EventRecord, rooms_for

log = logging.getLogger(__name__)

Sink = Callable[[str, dict[str, Any], tuple[str, ...]], Awaitable[None]]
Fetch = Callable[[str, int], Awaitable[list[dict[str, Any]]]]

_REMEMBERED_JOBS = 100_000


__all__ = ["EventRelay", "rooms_for"]


class EventRelay:
    def __init__(self, sink: Sink, fetch: Fetch, *, fill_from_start: bool = False) -> None:
        self._sink = sink
        self._fetch = fetch
        #: a job first heard of at seq k: emit 1..k-1 from the store first (other processes commit
        #: events too), or start at k (one process hears every event it commits)
        self._fill_from_start = fill_from_start
        self._lock: asyncio.Lock | None = None  #: one emitter at a time, so per-job order holds
        self._last: OrderedDict[str, int] = OrderedDict()  #: last emitted seq per job

    async def publish(self, records: Sequence[EventRecord]) -> None:
        """The store's listener, awaited right after a commit: emit now, in order, each once."""
        async with self._emitting():
            for record in records:
                try:
                    await self.deliver(record)
                except Exception:  # a socket problem never fails the transition that was committed
                    log.exception("could not emit %s seq %s of %s", record.type, record.seq, record.job_id)

    async def catch_up(self, job_id: str, stored: Sequence[dict[str, Any]]) -> None:
        """Emit what this relay has not yet emitted of a job's stored log (after a deaf spell)."""
        await self.publish([EventRecord(job_id=job_id, seq=payload["seq"], type=payload["type"], payload=payload,
                                        rooms=rooms_for(payload)) for payload in stored])

    def last_emitted(self, job_id: str) -> int:
        return self._last.get(job_id, 0)

    async def drain(self) -> None:
        """Wait until every event published so far has been emitted."""
        async with self._emitting():
            pass

    def _emitting(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def deliver(self, record: EventRecord) -> None:
        last = self._last.get(record.job_id, 0 if self._fill_from_start else record.seq - 1)
        if record.seq <= last:
            return
        if record.seq > last + 1:
            for payload in await self._fetch(record.job_id, last):
                if payload["seq"] >= record.seq:
                    break
                await self._emit(record.job_id, payload["type"], payload)
        await self._emit(record.job_id, record.type.value, record.payload)

    async def _emit(self, job_id: str, event: str, payload: dict[str, Any]) -> None:
        await self._sink(event, payload, rooms_for(payload))
        self._last[job_id] = payload["seq"]
        self._last.move_to_end(job_id)
        if len(self._last) > _REMEMBERED_JOBS:
            self._last.popitem(last=False)
