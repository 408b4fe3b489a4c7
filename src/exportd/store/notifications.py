"""Hearing the commits of other processes: PostgreSQL NOTIFY of every stored event, and LISTEN.

Every event but progress is announced by a trigger on ``export_events``
(migrations 0004 and 0005) that calls ``pg_notify`` inside the transaction
that writes it (on ``exportd_events``; the cancelled and failed ones, and the
queued one of a job handed back to the queue, also on ``exportd_stops``, which
workers hear; migration 0009), so the notification leaves only
when that transaction commits, in commit order, and is never lost once the
event is. Progress events, most of the traffic, are announced with the COMMIT
of their transaction, in a transaction of its own that PostgreSQL runs right
after the commit (``announcing.py``): a transaction that NOTIFYs holds the
notification queue's lock through the flush of its commit record, so such
commits follow one another one flush at a time. A progress notification can
thus be lost (the server process dies between the two); a listener that hears
the job's next event sees the gap and fills it from the store, and clients
ask ``export:sync``. The committing transaction never waits for any listener.
A job's ``seq`` is bumped under its row lock, so one job's notifications arrive
in ``seq`` order. An event too large for NOTIFY arrives without its payload and
is read from the store.

A LISTEN connection can die without a word: asyncpg notices a dead socket only
when it next sends something. So the listener proves its connection alive
every ``check_seconds`` (``SELECT now()`` with a timeout) and, when it is gone,
connects again, LISTENs again, and only then asks its owner to catch up from
the store (``on_resync(since)``), where everything committed while it was deaf
already is. A listener is never left deaf and silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy.engine import make_url

from exportd.domain.events import EventRecord, rooms_for
from exportd.domain.jobs import EventType

log = logging.getLogger(__name__)

EVENTS_CHANNEL = "exportd_events"  #: every event (API nodes relay them to their sockets)
STOPS_CHANNEL = "exportd_stops"  #: the events that take a job from its attempt (workers stop it)
#: NOTIFY takes at most 8000 bytes; a longer message goes without its payload (as the trigger does)
MAX_MESSAGE = 7900
#: how far before the last moment the listener was known alive a catch-up looks (a transaction's
#: clock is its start, and it may commit a little later)
RESYNC_MARGIN = timedelta(seconds=60)

OnRecords = Callable[[Sequence[EventRecord]], Awaitable[None] | None]
OnResync = Callable[[datetime], Awaitable[None]]
FetchEvent = Callable[[str, int], Awaitable[dict | None]]


def asyncpg_dsn(database_url: str) -> str:
    """The plain ``postgresql://`` DSN asyncpg connects to, from SQLAlchemy's URL."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def notification(record: EventRecord) -> str:
    """The message the trigger would send for this event: ``{"jobId", "seq", "type", "payload"}``."""
    note = {"jobId": record.job_id, "seq": record.seq, "type": str(record.type), "payload": record.payload}
    message = json.dumps(note, separators=(",", ":"))
    if len(message) > MAX_MESSAGE:  # ASCII only (json.dumps escapes the rest), so characters are bytes
        del note["payload"]
        message = json.dumps(note, separators=(",", ":"))
    return message


def stop_record(note: dict) -> EventRecord:
    """A notification as a worker reads it: the job, its seq and the event's type (the note is the payload)."""
    return EventRecord(job_id=note["jobId"], seq=note["seq"], type=EventType(note["type"]), payload=note, rooms=())


class CommitListener:
    def __init__(self, database_url: str, *, channel: str, on_records: OnRecords, on_resync: OnResync,
                 fetch_event: FetchEvent | None = None, check_seconds: float = 2.0, connect=None) -> None:
        self.dsn = asyncpg_dsn(database_url)
        self.channel = channel
        self._connect = connect  #: asyncpg.connect unless given (tests hold a reconnection with it)
        self.backend_pid: int | None = None  #: the server process of the current LISTEN connection
        self._on_records = on_records
        self._on_resync = on_resync
        self._fetch_event = fetch_event
        self.check_seconds = check_seconds
        self.connected = asyncio.Event()  #: LISTEN is active now
        self.reconnects = 0  #: how many times a lost connection was replaced
        self._inbox: asyncio.Queue[dict] = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self._last_alive: datetime | None = None  #: the database's clock at the last successful check

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._listen(), name="exportd-listener"),
                       asyncio.create_task(self._deliver(), name="exportd-listener-delivery")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    # -- the connection ---------------------------------------------------------

    async def _listen(self) -> None:
        import asyncpg

        connect = self._connect or asyncpg.connect
        backoff = 0.1
        first = True
        while True:
            try:
                connection = await connect(self.dsn, timeout=5)
            except (OSError, asyncpg.PostgresError, TimeoutError) as error:
                log.warning("listener: cannot connect (%s); retrying in %.1f s", error.__class__.__name__, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            lost = asyncio.Event()
            try:
                connection.add_termination_listener(lambda _connection, lost=lost: lost.set())
                await connection.add_listener(self.channel, self._heard)
                self.backend_pid = connection.get_server_pid()
                self._last_alive = self._last_alive or await connection.fetchval("SELECT now()")
                self.connected.set()
                backoff = 0.1
                if not first:
                    self.reconnects += 1
                    log.warning("listener: connected again; catching up from the store")
                    await self._on_resync(self._last_alive - RESYNC_MARGIN)
                first = False
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), self.check_seconds)
                    if not lost.is_set():
                        self._last_alive = await connection.fetchval("SELECT now()", timeout=self.check_seconds)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - any failure means: this connection is gone
                log.warning("listener: connection lost (%s)", error.__class__.__name__)
            finally:
                self.connected.clear()
                connection.terminate()

    def _heard(self, _connection, _pid: int, _channel: str, message: str) -> None:
        try:
            self._inbox.put_nowait(json.loads(message))
        except ValueError:
            log.warning("listener: unreadable notification %.200s", message)

    # -- handing events on, in the order they committed --------------------------

    async def _deliver(self) -> None:
        while True:
            batch = [await self._inbox.get()]
            while not self._inbox.empty():
                batch.append(self._inbox.get_nowait())
            try:
                records = [record for record in [await self._record(note) for note in batch] if record is not None]
                if records:
                    outcome = self._on_records(records)
                    if inspect.isawaitable(outcome):
                        await outcome
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("listener: could not hand on %d events", len(batch))

    async def _record(self, note: dict) -> EventRecord | None:
        if self._fetch_event is None:  # the listener needs no payloads (a worker's stop signals)
            return stop_record(note)
        payload = note.get("payload")
        if payload is None:  # too large for NOTIFY: it is in the store
            payload = await self._fetch_event(note["jobId"], note["seq"])
            if payload is None:
                return None
        return EventRecord(job_id=note["jobId"], seq=note["seq"], type=EventType(note["type"]), payload=payload,
                           rooms=rooms_for(payload))
