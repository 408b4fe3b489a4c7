"""The scaled-out engine: exports run in ``exportd worker`` processes, Celery workers on a Redis broker.

A task carries the job id only. The store is the truth: there is no result
backend, and the worker claims the job with the guarded CLAIM transition, so a
duplicate or late delivery finds the job no longer pending and does nothing.
Acks are late and a task whose worker process died is rejected back to the
queue; a job whose worker machine died is requeued by the lease reaper.

Whoever commits a job's ``export:queued`` event hands the job to the broker: the
API node that created it, the node that reaped an expired lease, the worker
that gave a job back at shutdown. Publishing happens on a thread of its own,
after the commit, so no request and no transaction waits for Redis; a job whose
message was lost (Redis down) is handed over again by the pending sweep
(``engine/cluster.py``).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Sequence

from celery import Celery

from exportd.config import Settings
from exportd.domain.events import EventRecord
from exportd.domain.jobs import EventType
from exportd.engine.running import RunningJob

log = logging.getLogger(__name__)

RUN_EXPORT = "exportd.run_export"


def create_celery(settings: Settings) -> Celery:
    """The Celery app of a cluster: the broker, the queue and the delivery guarantees, no result backend."""
    app = Celery("exportd", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=settings.celery_queue,
        task_acks_late=True,  # acknowledged once the task returned: a dead worker's task is delivered again
        task_reject_on_worker_lost=True,  # ... also when its process was killed
        task_ignore_result=True,  # the store is the truth: no result backend at all
        result_backend=None,
        worker_prefetch_multiplier=1,  # a child reserves only the export it is about to run
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_transport_options={"socket_connect_timeout": 2, "socket_timeout": 5},
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app


class CeleryDispatcher:
    """The engine of a process that runs no exports: hands each job it queued to the broker.

    One thread of its own sends; the event loop only puts the job id in its queue, which costs no future
    and no wake-up while the thread is busy. The thread sends what has gathered in its queue, in order,
    through one producer taken from Celery's pool for the whole batch.
    """

    def __init__(self, celery: Celery, settings: Settings) -> None:
        self.celery = celery
        self.settings = settings
        self.running: dict[str, RunningJob] = {}  #: always empty: exports run in the workers
        self.sent = 0
        self.failed = 0
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._sender: threading.Thread | None = None
        self._stopping = False
        self._options = {"queue": settings.celery_queue, "retry": True,
                         "retry_policy": {"max_retries": 2, "interval_start": 0.1, "interval_step": 0.5}}

    async def start(self) -> None:
        self._start_sender()

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Finish the send under way and drop the rest (the pending sweep hands those jobs over again)."""
        if self._sender is not None:
            self._stopping = True
            self._queue.put(None)
            self._sender.join()
            self._sender = None
            self._queue = queue.SimpleQueue()
            self._stopping = False

    def on_events(self, records: Sequence[EventRecord]) -> None:
        """The store's listener: every job this process queued goes to the broker."""
        for record in records:
            if record.type == EventType.QUEUED:
                self.submit(record.job_id)

    def submit(self, job_id: str) -> None:
        """Hand a job to the broker without waiting for it (a lost message is handed over again by the sweep)."""
        self._start_sender()
        self._queue.put(job_id)

    def _start_sender(self) -> None:
        if self._sender is None:
            self._sender = threading.Thread(target=self._send_forever, name="exportd-broker", daemon=True)
            self._sender.start()

    def _send_forever(self) -> None:
        while True:
            batch = [self._queue.get()]
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(self._queue.get_nowait())
            try:
                with self.celery.producer_or_acquire() as producer:
                    for job_id in batch:
                        if job_id is None or self._stopping:
                            return
                        self._send(job_id, producer)
            except Exception as error:  # noqa: BLE001 - no producer (Redis away): the pending sweep sends them
                self.failed += sum(1 for job_id in batch if job_id is not None)
                log.warning("could not hand %d exports to the broker (%s); the sweep will", len(batch),
                            error.__class__.__name__)
                if None in batch or self._stopping:
                    return

    def _send(self, job_id: str, producer) -> None:
        try:
            self.celery.send_task(RUN_EXPORT, args=[job_id], producer=producer, **self._options)
            self.sent += 1
        except Exception as error:  # noqa: BLE001 - Redis away: the pending sweep sends it again
            self.failed += 1
            log.warning("could not hand export %s to the broker (%s); the sweep will", job_id,
                        error.__class__.__name__)
