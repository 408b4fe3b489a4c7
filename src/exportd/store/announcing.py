"""PostgreSQL connections that announce a transaction's progress events with its COMMIT.

The trigger does not announce progress (migration 0005): a transaction that
NOTIFYs holds the notification queue's lock from its pre-commit through the
flush of its commit record, so such commits cannot share a WAL flush and follow
one another one flush at a time. Instead, the COMMIT that ends a transaction
which wrote progress events is sent as one simple query with their NOTIFYs
after it, ``COMMIT; SELECT pg_notify(...); ...``. PostgreSQL runs the
statements after a COMMIT in an implicit transaction of their own, which writes
nothing, so it waits for no flush and holds the lock for a moment only; and it
runs them as soon as the commit is durable, without waiting for the committing
process to read its answer and speak again. A notification can thus be lost
only if the server's process dies between the two (the job's next event then
makes every listener fill the gap from the store); a rolled-back transaction
announces nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import asyncpg

from exportd.domain.events import EventRecord
from exportd.store.notifications import EVENTS_CHANNEL, notification


class AnnouncingConnection(asyncpg.Connection):
    """asyncpg's connection, whose COMMIT also sends the NOTIFYs `announce_at_commit` was given.

    asyncpg ends a transaction with ``execute("COMMIT;")`` or ``execute("ROLLBACK;")`` and starts one with
    ``execute("BEGIN…")``: the messages kept since are sent with the first and forgotten at the others.
    """

    #: tests: which progress events to leave unannounced, as a notification lost after the commit would be
    lose: ClassVar[Callable[[EventRecord], bool] | None] = None
    _at_commit: list[str] | None = None

    def announce_at_commit(self, record: EventRecord) -> None:
        """Send the notification of `record`, an event the transaction under way wrote, when it commits."""
        lose = AnnouncingConnection.lose
        if lose is not None and lose(record):
            return
        if self._at_commit is None:
            self._at_commit = []
        self._at_commit.append(notification(record))

    async def execute(self, query: str, *args, timeout: float | None = None) -> str:
        if not args and self._at_commit is not None:
            if query == "COMMIT;":
                messages, self._at_commit = self._at_commit, None
                query += "".join(f" SELECT pg_notify('{EVENTS_CHANNEL}', {_literal(m)});" for m in messages)
            elif query == "ROLLBACK;" or query.startswith("BEGIN"):
                self._at_commit = None
        return await super().execute(query, *args, timeout=timeout)


def _literal(text: str) -> str:
    """`text` as an SQL string constant, whatever ``standard_conforming_strings`` says (an ``E''`` string)."""
    return "E'" + text.replace("\\", "\\\\").replace("'", "''") + "'"
