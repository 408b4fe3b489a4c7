"""Housekeeping that keeps every job moving and every file accounted for.

* A `processing` job whose lease expired (its worker died or stalled) goes back
  to `pending`, or to `failed` (retryable) once it used all its attempts.
* A `processing` job past its time limit is cancelled with reason `timeout`.
* A completed export past its retention loses its file (a download is then 410).
* Export folders nothing needs are deleted: of attempts that did not publish
  (a crashed attempt's truncated ZIP among them), and of jobs that are over.

Every change is a guarded transition, so several nodes may sweep at once.
Leases, time limits and retention are judged by the store's clock
(`Repository.now`: PostgreSQL's own `now()`), never by one node's.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path

from exportd.config import Settings
from exportd.domain.jobs import CancelReason, JobStatus
from exportd.storage import LocalStorage
from exportd.store.uow import Store

log = logging.getLogger(__name__)


class Reaper:
    def __init__(self, store: Store, storage: LocalStorage, settings: Settings) -> None:
        self.store = store
        self.storage = storage
        self.settings = settings

    async def sweep(self) -> None:
        await self.reap_expired_leases()
        await self.cancel_overdue()
        await self.expire_files()
        await self.remove_orphan_folders()

    async def run_forever(self, interval: float) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sweep failed")
            await asyncio.sleep(interval)

    async def reap_expired_leases(self) -> int:
        expired = await self.store.query(lambda repo: repo.expired_leases(repo.now()))
        changed = 0
        for job in expired:
            def reap(repo, job=job):
                if job.attempt < self.settings.max_attempts:
                    return repo.requeue(job.id, job.attempt, lease_expired_before=repo.now())
                return repo.fail(job.id, job.attempt, lease_expired_before=repo.now(), retryable=True,
                                 code="WORKER_LOST",
                                 error=f"The export stopped responding {job.attempt} times")

            changed += await self.store.apply(reap) is not None  # the same sweep then removes its folder
        return changed

    async def cancel_overdue(self) -> int:
        limit = timedelta(seconds=self.settings.job_timeout_seconds)
        overdue = await self.store.query(lambda repo: repo.overdue_jobs(repo.now() - limit))
        changed = 0
        for job in overdue:
            cancelled = await self.store.apply(lambda repo, job=job: repo.cancel(
                job.id, reason=CancelReason.TIMEOUT, cancelled_by=None, attempt=job.attempt))
            changed += cancelled is not None
        return changed

    async def expire_files(self) -> int:
        retention = timedelta(seconds=self.settings.retention_seconds)
        expired = await self.store.query(lambda repo: repo.expired_files(repo.now() - retention))
        for job in expired:
            await self.store.apply(lambda repo, job_id=job.id: repo.mark_expired(job_id))
            if job.file_path:  # the folder of the attempt that published it; the others are orphans
                await asyncio.to_thread(self.storage.delete_export, job.file_path)
        return len(expired)

    async def remove_orphan_folders(self) -> int:
        """Delete export folders no job needs (see `folder_needed`)."""
        folders = await asyncio.to_thread(self.storage.attempt_folders)
        owners = await self.store.query(lambda repo: repo.folder_owners({job_of_folder(name) for name in folders}))
        orphans = [name for name in folders if not folder_needed(name, owners.get(job_of_folder(name)))]
        for name in orphans:
            await asyncio.to_thread(self.storage.delete_attempt_folder, name)
        return len(orphans)


def folder_needed(name: str, job) -> bool:
    """Whether an export folder must stay: it holds the published export, or an attempt that may still run.

    `job` is the folder's job (id, status, attempt, file_path) or None if there is none. A folder is
    ``<job>.<attempt>``, or ``<job>`` in an older layout (one folder for all attempts).
    """
    if job is None:
        return False
    _, dot, number = name.partition(".")
    attempt = int(number) if dot and number.isdigit() else None
    if job.status == JobStatus.COMPLETED:  # only the published attempt's folder; none once expired or discarded
        return job.file_path is not None and Path(job.file_path).parent.name == name
    if job.status == JobStatus.PROCESSING:  # the running attempt's; an earlier one is over
        return attempt is None or attempt >= job.attempt
    if job.status == JobStatus.PENDING:  # the next claim's (it may be making it now); every earlier one is over
        return attempt is None or attempt > job.attempt
    return False


def job_of_folder(name: str) -> str:
    """The job id an export folder belongs to: ``<job>.<attempt>`` (or a whole-job folder of an older layout)."""
    return name.split(".", 1)[0]
