"""The duties a cluster runs once, not once per node: the reaper and the pending sweep.

Every API node of a scaled-out cluster runs `ClusterDuties`; the one that holds
a PostgreSQL session advisory lock does the work, the others only try for the
lock. When the leader's connection (or the leader) goes away, PostgreSQL
releases the lock and another node takes over at its next try. Each change the
duties make is a guarded transition anyway, so a double run would change
nothing; the lock only saves the work.

The pending sweep hands to the broker, again, every job that has been pending
longer than ``EXPORTD_PENDING_RESEND_SECONDS`` (its message was lost: Redis was
down when it was queued, or was flushed). A duplicate message is harmless: the
worker's guarded CLAIM lets only one attempt start.
"""

from __future__ import annotations

import asyncio
import logging
import time

from exportd.config import Settings
from exportd.engine.celery_app import CeleryDispatcher
from exportd.engine.leases import Reaper
from exportd.store.notifications import asyncpg_dsn
from exportd.store.uow import Store

log = logging.getLogger(__name__)

LOCK_KEY = 0x6578706F7274  #: "export": the advisory lock the cluster's leader holds


class ClusterDuties:
    def __init__(self, store: Store, settings: Settings, reaper: Reaper, dispatcher: CeleryDispatcher) -> None:
        self.store = store
        self.settings = settings
        self.reaper = reaper
        self.dispatcher = dispatcher
        self.leader = False
        self.resent = 0
        self._last_sent: dict[str, float] = {}

    async def run_forever(self, interval: float) -> None:
        import asyncpg

        while True:
            connection = None
            try:
                connection = await asyncpg.connect(asyncpg_dsn(self.settings.database_url or ""), timeout=5)
                while True:
                    if not self.leader:
                        self.leader = bool(await connection.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY,
                                                                     timeout=5))
                    else:
                        await connection.fetchval("SELECT 1", timeout=5)  # still ours: the session is alive
                    if self.leader:
                        await self.sweep()
                    await asyncio.sleep(interval)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - the lock's session is gone: try again
                log.warning("cluster duties: %s; trying again", error.__class__.__name__)
                await asyncio.sleep(min(interval, 1.0))
            finally:
                self.leader = False
                if connection is not None:
                    connection.terminate()

    async def sweep(self) -> None:
        try:
            await self.reaper.sweep()
        except Exception:
            log.exception("reaper sweep failed")
        await self.resend_pending()

    async def resend_pending(self) -> int:
        """Hand every job pending too long to the broker again (at most once per resend period each)."""
        period = self.settings.pending_resend_seconds
        stale = await self.store.query(lambda repo: repo.stale_pending_ids(period))
        now = time.monotonic()
        due = [job_id for job_id in stale if now - self._last_sent.get(job_id, -period) >= period]
        self._last_sent = {job_id: self._last_sent[job_id] for job_id in stale if job_id in self._last_sent}
        for job_id in due:
            self._last_sent[job_id] = now
            self.dispatcher.submit(job_id)
        self.resent += len(due)
        return len(due)


__all__ = ["LOCK_KEY", "ClusterDuties"]
