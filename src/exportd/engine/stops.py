"""One LISTEN connection per worker process: the stop signals its main process hands to its prefork children.

PostgreSQL wakes every connection that LISTENs in a database on every
notifying commit, whatever the channel it listens on. A LISTEN connection in
each prefork child would cost the database one wake-up per child of the cluster
for every event stored. So only a worker's main process listens on
``exportd_stops`` (`StopRelay`), and it hands what it hears to each of its
children by datagram (`StopInbox`): a Unix socket in Linux's abstract
namespace, named after a token of the worker and the child's process id, so
there is nothing on disk to clean up and a socket goes with its process (on
other systems, a file in the temporary folder that the child removes).

Nothing here is needed for correctness. A child that misses a datagram (it was
being forked, its queue was full) still stops its job at the runner's next
store check, as it would after a notification lost to a deaf connection. When
the main process's listener connects again after losing its connection, it
tells every child to check with the store at once (``resync``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence

from exportd.domain.events import EventRecord
from exportd.store.notifications import STOPS_CHANNEL, CommitListener, stop_record

log = logging.getLogger(__name__)

RESYNC = b"resync"  #: the datagram that asks a child's supervisors to check the store now
MAX_DATAGRAM = 60_000  #: a batch of stops is split into datagrams of at most this many bytes


def new_token() -> str:
    """What tells this worker's sockets from another worker's on the same host or network namespace."""
    return secrets.token_hex(6)


def address(token: str, pid: int) -> bytes | str:
    """A child's socket. On Linux in the abstract namespace (a leading NUL): no file, and it dies with the
    process. Elsewhere a file in the system's temporary folder, removed when the child closes its inbox."""
    name = f"exportd-stops-{token}-{pid}"
    if sys.platform.startswith("linux"):
        return f"\0{name}".encode()
    return os.path.join(tempfile.gettempdir(), name)


def datagrams(notes: Sequence[dict]) -> list[bytes]:
    """The notes as JSON arrays, in order, each datagram at most `MAX_DATAGRAM` bytes (a note never is more)."""
    out: list[bytes] = []
    batch: list[bytes] = []
    size = 2
    for note in notes:
        encoded = json.dumps(note, separators=(",", ":")).encode()
        if batch and size + len(encoded) + 1 > MAX_DATAGRAM:
            out.append(b"[" + b",".join(batch) + b"]")
            batch, size = [], 2
        batch.append(encoded)
        size += len(encoded) + 1
    if batch:
        out.append(b"[" + b",".join(batch) + b"]")
    return out


class StopRelay:
    """In a worker's main process: LISTEN on the stops channel, and pass every stop on to each child.

    Runs an event loop on a thread of its own. `children` is asked for the pool's process ids at each
    send, so a child forked later (one replacing a child that died) is reached from its first stop.
    """

    def __init__(self, database_url: str, *, token: str, children: Callable[[], Iterable[int]],
                 check_seconds: float = 2.0) -> None:
        self.token = token
        self._children = children
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.setblocking(False)
        self.listener = CommitListener(database_url, channel=STOPS_CHANNEL, on_records=self._heard,
                                       on_resync=self._resync, check_seconds=check_seconds)
        self.sent = 0  #: datagrams handed to a child's socket
        self.missed = 0  #: datagrams no child took (not bound yet, gone, or its queue full)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="exportd-stop-relay", daemon=True)

    def start(self, timeout: float = 20.0) -> bool:
        """Listen; returns once LISTEN is active, so no child runs an export before a stop can reach it.

        False if it is not active within `timeout` (the database is unreachable): the listener goes on
        trying, and until it succeeds the runners' store checks stop the jobs.
        """
        self._thread.start()
        return asyncio.run_coroutine_threadsafe(self._start(timeout), self.loop).result()

    async def _start(self, timeout: float) -> bool:
        await self.listener.start()
        try:
            await asyncio.wait_for(self.listener.connected.wait(), timeout)
        except TimeoutError:
            log.warning("stops: not listening after %.0f s; the store checks stop jobs until it is", timeout)
            return False
        return True

    def stop(self) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self.listener.stop(), self.loop).result(10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
        self._socket.close()

    def _heard(self, records: Sequence[EventRecord]) -> None:
        for datagram in datagrams([record.payload for record in records]):
            self._broadcast(datagram)

    async def _resync(self, _since) -> None:
        self._broadcast(RESYNC)

    def _broadcast(self, datagram: bytes) -> None:
        for pid in self._children():
            try:
                self._socket.sendto(datagram, address(self.token, pid))
                self.sent += 1
            except OSError as error:  # the store check stops that child's job instead
                self.missed += 1
                log.debug("stops: child %d missed a datagram (%s)", pid, error.__class__.__name__)


class StopInbox:
    """In a prefork child: its worker's stop datagrams, handed on from the child's event loop."""

    def __init__(self, token: str, *, on_records: Callable[[Sequence[EventRecord]], None],
                 on_resync: Callable[[], None]) -> None:
        self._on_records = on_records
        self._on_resync = on_resync
        self._address = address(token, os.getpid())
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(self._address)
        self._socket.setblocking(False)
        self._loop: asyncio.AbstractEventLoop | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Read on `loop` (call from its thread)."""
        self._loop = loop
        loop.add_reader(self._socket.fileno(), self._read)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._socket.fileno())
        self._socket.close()
        if isinstance(self._address, str):
            with contextlib.suppress(OSError):
                os.unlink(self._address)

    def _read(self) -> None:
        while True:
            try:
                datagram = self._socket.recv(MAX_DATAGRAM + 1024)
            except BlockingIOError:
                return
            try:
                if datagram == RESYNC:
                    self._on_resync()
                else:
                    self._on_records([stop_record(note) for note in json.loads(datagram)])
            except Exception:
                log.exception("stops: could not hand on a datagram of %d bytes", len(datagram))
