"""Everything one exportd process runs, wired from its settings, started and stopped as one.

Two shapes. Embedded (no broker): the engine runs exports in this process and
the reaper sweeps here. Scaled out (``EXPORTD_BROKER_URL``): the engine hands
queued jobs to Celery workers, a LISTEN connection feeds the socket relay with
the commits of every other process, and the reaper and the pending sweep run on
whichever API node holds the cluster's advisory lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from datetime import datetime
from typing import Any

from exportd.config import Settings
from exportd.engine.base import Engine
from exportd.engine.hooks import EngineHooks
from exportd.engine.leases import Reaper
from exportd.engine.local import LocalEngine
from exportd.metrics import Metrics
from exportd.realtime.emitter import EventRelay
from exportd.realtime.sio import create_sio, room
from exportd.services import Services
from exportd.storage import LocalStorage
from exportd.store.migrate import upgrade
from exportd.store.notifications import EVENTS_CHANNEL, CommitListener
from exportd.store.uow import Store


class Runtime:
    def __init__(self, settings: Settings, *, hooks: EngineHooks | None = None, client_manager=None) -> None:
        self.settings = settings = settings.resolved()
        self.store = Store(settings.database_url, public_url=settings.public_url, announce=settings.scaled_out)
        self.storage = LocalStorage(settings.storage_dir)
        self.services = Services(self.store, self.storage, settings, hooks)
        self.engine: Engine
        if settings.scaled_out:
            from exportd.engine.celery_app import CeleryDispatcher, create_celery

            self.engine = CeleryDispatcher(create_celery(settings), settings)
            self.store.subscribe(self.engine.on_events)
            self.engine_name = "celery"
        else:
            self.engine = LocalEngine(self.store, self.storage, settings, hooks)  # hears cancels first
            self.engine_name = "local"
            self.services.pool = self.engine.pool  # label images are traced where export steps run
        self.metrics = Metrics()
        self.metrics.running.set_function(lambda: len(self.engine.running))
        self.store.subscribe(self.metrics.on_events)
        self.sio = create_sio(self.services, allowed_origins=settings.socket_origins, client_manager=client_manager)
        self.relay = EventRelay(sink=self._emit, fetch=self._fetch, fill_from_start=settings.scaled_out)
        self.store.subscribe(self.relay.publish)
        self.reaper = Reaper(self.store, self.storage, settings)
        self.listener: CommitListener | None = None
        self.duties: ClusterDuties | None = None
        if settings.scaled_out:
            from exportd.engine.cluster import ClusterDuties

            self.listener = CommitListener(settings.database_url, channel=EVENTS_CHANNEL,
                                           on_records=self.relay.publish, on_resync=self._catch_up,
                                           fetch_event=self._fetch_event, check_seconds=settings.listener_check_seconds)
            self.duties = ClusterDuties(self.store, settings, self.reaper, self.engine)  # type: ignore[arg-type]
            dispatcher, listener, duties = self.engine, self.listener, self.duties
            self.metrics.broker_sent.set_function(lambda: dispatcher.sent)  # type: ignore[attr-defined]
            self.metrics.broker_failed.set_function(lambda: dispatcher.failed)  # type: ignore[attr-defined]
            self.metrics.listener_reconnects.set_function(lambda: listener.reconnects)
            self.metrics.leader.set_function(lambda: float(duties.leader))
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        await upgrade(self.settings.database_url)
        self.storage.exports.mkdir(parents=True, exist_ok=True)
        if self.duties is not None:
            self._tasks = [asyncio.create_task(self.duties.run_forever(self.sweep_interval), name="exportd-duties")]
        else:
            self._tasks = [asyncio.create_task(self.reaper.run_forever(self.sweep_interval), name="exportd-reaper")]
        if self.listener is not None:
            await self.listener.start()
            await asyncio.wait_for(self.listener.connected.wait(), 20)
        await self.engine.start()
        if self.settings.gc_freeze_on_start:
            # Everything alive now (modules, the app, the engines) lives as long as the process: out of the
            # collector's way, so a full collection scans only what requests create (in the cancel benchmark
            # the longest pause fell from 137 ms to 28 ms).
            gc.collect()
            gc.freeze()

    async def stop(self) -> None:
        await self.engine.stop()
        if self.listener is not None:
            await self.listener.stop()
        await self.relay.drain()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.store.close()

    @property
    def sweep_interval(self) -> float:
        return min(self.settings.janitor_interval_seconds, self.settings.lease_seconds / 2)

    async def _emit(self, event: str, payload: dict[str, Any], rooms: tuple[str, ...]) -> None:
        await self.sio.emit(event, payload, to=room(rooms[0]) if len(rooms) == 1 else [room(r) for r in rooms])

    async def _fetch(self, job_id: str, after_seq: int) -> list[dict[str, Any]]:
        return await self.store.query(lambda repo: repo.events_after(job_id, after_seq))

    async def _fetch_event(self, job_id: str, seq: int) -> dict[str, Any] | None:
        events = await self.store.query(lambda repo: repo.events_after(job_id, seq - 1, limit=1))
        return events[0] if events else None

    async def _catch_up(self, since: datetime) -> None:
        """After the listener was deaf: emit, from the store, what this node missed of every job that moved."""
        job_ids = await self.store.query(lambda repo: repo.job_ids_updated_since(since))
        for job_id in job_ids:
            after = self.relay.last_emitted(job_id)
            stored = await self.store.query(lambda repo, job_id=job_id, after=after: repo.events_after(job_id, after))
            await self.relay.catch_up(job_id, stored)
