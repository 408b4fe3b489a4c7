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

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

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
    """The engine of a process that runs no exports: hands each job it queued to the broker."""

    def __init__(self, celery: Celery, settings: Settings) -> None:
        self.celery = celery
        self.settings = settings
        self.running: dict[str, RunningJob] = {}  #: always empty: exports run in the workers
        self.sent = 0
        self.failed = 0
        self._sender: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        if self._sender is None:
            self._sender = ThreadPoolExecutor(1, thread_name_prefix="exportd-broker")

    async def stop(self, grace_seconds: float = 10.0) -> None:
        if self._sender is not None:
            self._sender.shutdown(wait=True, cancel_futures=True)
            self._sender = None

    def on_events(self, records: Sequence[EventRecord]) -> None:
        """The store's listener: every job this process queued goes to the broker."""
        for record in records:
            if record.type == EventType.QUEUED:
                self.submit(record.job_id)

    def submit(self, job_id: str) -> None:
        """Hand a job to the broker without waiting for it (a lost message is handed over again by the sweep)."""
        if self._sender is None:
            self._sender = ThreadPoolExecutor(1, thread_name_prefix="exportd-broker")
        self._sender.submit(self._send, job_id)

    def _send(self, job_id: str) -> None:
        try:
            self.celery.send_task(RUN_EXPORT, args=[job_id], queue=self.settings.celery_queue, retry=True,
                                  retry_policy={"max_retries": 2, "interval_start": 0.1, "interval_step": 0.5})
            self.sent += 1
        except Exception as error:  # noqa: BLE001 - Redis away: the pending sweep sends it again
            self.failed += 1
            log.warning("could not hand export %s to the broker (%s); the sweep will", job_id,
                        error.__class__.__name__)
