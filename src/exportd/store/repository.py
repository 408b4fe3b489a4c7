"""Every read and write exportd makes, on one connection inside one transaction.

Job transitions follow DESIGN §1: each is ONE guarded UPDATE (compare-and-set on
the status, and for a worker's statements on its attempt number too) that bumps
``seq``, followed by the INSERT of its one event row, in the same transaction.
A transition that matches no row lost to another one and returns None.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, and_, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from exportd.domain import events as ev
from exportd.domain.jobs import (
    ACTIVE,
    CANCEL,
    CLAIM,
    COMPLETE,
    FAIL,
    PROGRESS,
    REQUEUE,
    CancelReason,
    JobStatus,
    Transition,
)
from exportd.store.tables import (
    export_events,
    export_jobs,
    idempotency_keys,
    images,
    polygons,
    project_shares,
    projects,
    users,
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def download_path(project_id: str, job_id: str) -> str:
    return f"/api/projects/{project_id}/export/{job_id}/download"


class Repository:
    def __init__(self, conn: AsyncConnection, *, public_url: str = "") -> None:
        self.conn = conn
        self.public_url = public_url
        self.events: list[ev.EventRecord] = []  #: written in this transaction, published after commit

    # -- users -----------------------------------------------------------------

    async def add_user(self, email: str, password_hash: str) -> Row:
        row = {"id": new_id(), "email": email, "password_hash": password_hash, "created_at": utcnow()}
        await self.conn.execute(insert(users).values(row))
        return await self.user(row["id"])

    async def user(self, user_id: str) -> Row | None:
        return (await self.conn.execute(select(users).where(users.c.id == user_id))).one_or_none()

    async def user_by_email(self, email: str) -> Row | None:
        return (await self.conn.execute(select(users).where(users.c.email == email))).one_or_none()

    async def lock_user(self, user_id: str) -> None:
        """Serialise a user's writes that check-then-insert (a no-op lock on SQLite's single writer)."""
        await self.conn.execute(select(users.c.id).where(users.c.id == user_id).with_for_update())

    # -- projects and shares ---------------------------------------------------

    async def add_project(self, owner_id: str, name: str) -> Row:
        row = {"id": new_id(), "owner_id": owner_id, "name": name, "created_at": utcnow()}
        await self.conn.execute(insert(projects).values(row))
        return await self.project(row["id"])

    async def project(self, project_id: str) -> Row | None:
        query = select(projects).where(projects.c.id == project_id, projects.c.deleted_at.is_(None))
        return (await self.conn.execute(query)).one_or_none()

    def _visible_to(self, user_id: str):
        shared = select(project_shares.c.project_id).where(project_shares.c.user_id == user_id)
        return and_(projects.c.deleted_at.is_(None), or_(projects.c.owner_id == user_id, projects.c.id.in_(shared)))

    async def project_for(self, user_id: str, project_id: str) -> Row | None:
        query = select(projects).where(projects.c.id == project_id, self._visible_to(user_id))
        return (await self.conn.execute(query)).one_or_none()

    async def projects_for(self, user_id: str) -> Sequence[Row]:
        counts = (
            select(images.c.project_id, func.count().label("image_count"))
            .group_by(images.c.project_id)
            .subquery()
        )
        query = (
            select(projects, func.coalesce(counts.c.image_count, 0).label("image_count"))
            .outerjoin(counts, counts.c.project_id == projects.c.id)
            .where(self._visible_to(user_id))
            .order_by(projects.c.created_at, projects.c.id)
        )
        return (await self.conn.execute(query)).all()

    async def delete_project(self, project_id: str) -> None:
        await self.conn.execute(update(projects).where(projects.c.id == project_id).values(deleted_at=utcnow()))

    async def add_share(self, project_id: str, user_id: str) -> bool:
        exists = await self.conn.execute(
            select(project_shares.c.user_id).where(
                project_shares.c.project_id == project_id, project_shares.c.user_id == user_id
            )
        )
        if exists.one_or_none():
            return False
        await self.conn.execute(
            insert(project_shares).values(project_id=project_id, user_id=user_id, created_at=utcnow())
        )
        return True

    async def remove_share(self, project_id: str, user_id: str) -> bool:
        result = await self.conn.execute(
            delete(project_shares).where(project_shares.c.project_id == project_id, project_shares.c.user_id == user_id)
        )
        return result.rowcount > 0

    async def shares(self, project_id: str) -> Sequence[Row]:
        query = (
            select(users.c.id, users.c.email, project_shares.c.created_at)
            .join(project_shares, project_shares.c.user_id == users.c.id)
            .where(project_shares.c.project_id == project_id)
            .order_by(project_shares.c.created_at)
        )
        return (await self.conn.execute(query)).all()

    # -- images and polygons ---------------------------------------------------

    async def add_image(self, project_id: str, *, image_id: str, name: str, width: int, height: int,
                        content_type: str, size: int, storage_key: str) -> Row:
        position = (
            await self.conn.execute(
                select(func.coalesce(func.max(images.c.position), 0)).where(images.c.project_id == project_id)
            )
        ).scalar_one() + 1
        await self.conn.execute(
            insert(images).values(
                id=image_id, project_id=project_id, position=position, name=name, width=width, height=height,
                content_type=content_type, size=size, storage_key=storage_key, created_at=utcnow(),
            )
        )
        return (await self.conn.execute(select(images).where(images.c.id == image_id))).one()

    async def image(self, project_id: str, image_id: str) -> Row | None:
        query = select(images).where(images.c.id == image_id, images.c.project_id == project_id)
        return (await self.conn.execute(query)).one_or_none()

    async def images_of(self, project_id: str, image_ids: Iterable[str] | None = None) -> Sequence[Row]:
        query = select(images).where(images.c.project_id == project_id).order_by(images.c.position)
        if image_ids is not None:
            query = query.where(images.c.id.in_(list(image_ids)))
        return (await self.conn.execute(query)).all()

    async def image_ids_of(self, project_id: str) -> set[str]:
        rows = await self.conn.execute(select(images.c.id).where(images.c.project_id == project_id))
        return {row.id for row in rows}

    async def set_polygons(self, image_id: str, shapes: Sequence[dict[str, Any]]) -> None:
        await self.conn.execute(delete(polygons).where(polygons.c.image_id == image_id))
        if shapes:
            await self.conn.execute(
                insert(polygons),
                [{"image_id": image_id, "position": index, **shape} for index, shape in enumerate(shapes)],
            )

    async def polygons_of(self, image_ids: Sequence[str]) -> Sequence[Row]:
        if not image_ids:
            return []
        query = (
            select(polygons)
            .where(polygons.c.image_id.in_(list(image_ids)))
            .order_by(polygons.c.image_id, polygons.c.position)
        )
        return (await self.conn.execute(query)).all()

    # -- export jobs: reads ----------------------------------------------------

    async def job(self, job_id: str) -> Row | None:
        return (await self.conn.execute(select(export_jobs).where(export_jobs.c.id == job_id))).one_or_none()

    async def job_for(self, user_id: str, project_id: str, job_id: str) -> Row | None:
        """The job, if `user_id` started it on `project_id` and may still see that project."""
        query = (
            select(export_jobs)
            .join(projects, projects.c.id == export_jobs.c.project_id)
            .where(
                export_jobs.c.id == job_id,
                export_jobs.c.project_id == project_id,
                export_jobs.c.user_id == user_id,
                self._visible_to(user_id),
            )
        )
        return (await self.conn.execute(query)).one_or_none()

    async def history(self, user_id: str, project_id: str, limit: int) -> Sequence[Row]:
        query = (
            select(export_jobs)
            .where(
                export_jobs.c.user_id == user_id,
                export_jobs.c.project_id == project_id,
                export_jobs.c.discarded_at.is_(None),
            )
            .order_by(export_jobs.c.created_at.desc(), export_jobs.c.id.desc())
            .limit(limit)
        )
        return (await self.conn.execute(query)).all()

    async def events_after(self, job_id: str, after_seq: int, limit: int | None = None) -> list[dict[str, Any]]:
        query = (
            select(export_events.c.payload)
            .where(export_events.c.job_id == job_id, export_events.c.seq > after_seq)
            .order_by(export_events.c.seq)
        )
        if limit is not None:
            query = query.limit(limit)
        return [row.payload for row in await self.conn.execute(query)]

    async def count_active(self, user_id: str) -> int:
        query = select(func.count()).where(
            export_jobs.c.user_id == user_id, export_jobs.c.status.in_([s.value for s in ACTIVE])
        )
        return (await self.conn.execute(query)).scalar_one()

    async def active_jobs(self, *, project_id: str | None = None, user_id: str | None = None) -> Sequence[Row]:
        query = select(export_jobs).where(export_jobs.c.status.in_([s.value for s in ACTIVE]))
        if project_id is not None:
            query = query.where(export_jobs.c.project_id == project_id)
        if user_id is not None:
            query = query.where(export_jobs.c.user_id == user_id)
        return (await self.conn.execute(query.order_by(export_jobs.c.created_at))).all()

    async def pending_job_ids(self) -> list[str]:
        query = (
            select(export_jobs.c.id)
            .where(export_jobs.c.status == JobStatus.PENDING)
            .order_by(export_jobs.c.created_at, export_jobs.c.id)
        )
        return [row.id for row in await self.conn.execute(query)]

    async def expired_leases(self, now: datetime) -> Sequence[Row]:
        query = select(export_jobs).where(
            export_jobs.c.status == JobStatus.PROCESSING, export_jobs.c.lease_expires_at < now
        )
        return (await self.conn.execute(query)).all()

    async def overdue_jobs(self, started_before: datetime) -> Sequence[Row]:
        query = select(export_jobs).where(
            export_jobs.c.status == JobStatus.PROCESSING, export_jobs.c.started_at < started_before
        )
        return (await self.conn.execute(query)).all()

    async def expired_files(self, completed_before: datetime) -> Sequence[Row]:
        query = select(export_jobs.c.id, export_jobs.c.file_path).where(
            export_jobs.c.status == JobStatus.COMPLETED,
            export_jobs.c.completed_at < completed_before,
            export_jobs.c.expired_at.is_(None),
        )
        return (await self.conn.execute(query)).all()

    async def mark_expired(self, job_id: str) -> None:
        await self.conn.execute(
            update(export_jobs).where(export_jobs.c.id == job_id).values(expired_at=utcnow(), file_path=None)
        )

    async def mark_discarded(self, job_id: str) -> None:
        await self.conn.execute(
            update(export_jobs).where(export_jobs.c.id == job_id).values(discarded_at=utcnow(), file_path=None)
        )

    async def live_job_ids(self, job_ids: Iterable[str]) -> set[str]:
        """Of `job_ids`, those whose files must stay: active, or completed and not yet expired or discarded."""
        ids = list(job_ids)
        if not ids:
            return set()
        query = select(export_jobs.c.id).where(
            export_jobs.c.id.in_(ids),
            or_(
                export_jobs.c.status.in_([s.value for s in ACTIVE]),
                and_(export_jobs.c.status == JobStatus.COMPLETED, export_jobs.c.file_path.is_not(None)),
            ),
        )
        return {row.id for row in await self.conn.execute(query)}

    async def recent_processing_time(self, project_id: str) -> float | None:
        query = (
            select(export_jobs.c.processing_time)
            .where(export_jobs.c.project_id == project_id, export_jobs.c.status == JobStatus.COMPLETED)
            .order_by(export_jobs.c.completed_at.desc())
            .limit(1)
        )
        return (await self.conn.execute(query)).scalar_one_or_none()

    async def queue_position(self, job: Row) -> int:
        query = select(func.count()).where(
            export_jobs.c.status == JobStatus.PENDING,
            export_jobs.c.id != job.id,
            or_(
                export_jobs.c.created_at < job.created_at,
                and_(export_jobs.c.created_at == job.created_at, export_jobs.c.id < job.id),
            ),
        )
        return (await self.conn.execute(query)).scalar_one()

    # -- idempotency -----------------------------------------------------------

    async def idempotent_job(self, user_id: str, key: str) -> Row | None:
        query = select(idempotency_keys).where(idempotency_keys.c.user_id == user_id, idempotency_keys.c.key == key)
        return (await self.conn.execute(query)).one_or_none()

    async def remember_idempotency_key(self, user_id: str, key: str, request_hash: str, job_id: str) -> None:
        await self.conn.execute(
            insert(idempotency_keys).values(
                user_id=user_id, key=key, request_hash=request_hash, job_id=job_id, created_at=utcnow()
            )
        )

    # -- export jobs: the state machine ----------------------------------------

    async def create_job(self, *, project_id: str, user_id: str, options: dict[str, Any], project_name: str) -> Row:
        """Insert a `pending` job with its `export:queued` event (seq 1)."""
        now = utcnow()
        job_id = new_id()
        await self.conn.execute(
            insert(export_jobs).values(
                id=job_id, project_id=project_id, user_id=user_id, status=JobStatus.PENDING, seq=1, attempt=0,
                progress=0.0, options=options, project_name=project_name, created_at=now, updated_at=now,
                warnings=[],
            )
        )
        job = await self.job(job_id)
        payload = ev.Queued(
            **self._base(job, now), queued_at=iso(now), position=await self.queue_position(job), attempt=0
        )
        await self._record(job, payload)
        return job

    async def claim(self, job_id: str, *, lease_seconds: float) -> Row | None:
        now = utcnow()
        job = await self._transition(
            CLAIM, job_id, now=now,
            values={"attempt": export_jobs.c.attempt + 1, "started_at": now,
                    "lease_expires_at": now + timedelta(seconds=lease_seconds)},
        )
        if job is not None:
            estimate = await self.recent_processing_time(job.project_id)
            await self._record(job, ev.Started(**self._base(job, now), started_at=iso(now),
                                               estimated_duration=estimate, attempt=job.attempt))
        return job

    async def progress(self, job_id: str, attempt: int, *, progress: float, stage: str, current: int, total: int,
                       message: str, eta_seconds: float | None) -> Row | None:
        """Record progress; nothing happens when the job is no longer this attempt's, or progress would fall."""
        now = utcnow()
        job = await self._transition(
            PROGRESS, job_id, now=now, attempt=attempt,
            guard=[export_jobs.c.progress <= progress],
            values={"progress": progress, "stage": stage, "message": message},
        )
        if job is not None:
            await self._record(job, ev.Progress(
                **self._base(job, now), progress=progress, stage=stage,
                stage_progress=ev.StageProgress(current=current, total=total),
                message=message, eta_seconds=eta_seconds,
            ))
        return job

    async def renew_lease(self, job_id: str, attempt: int, *, lease_seconds: float) -> bool:
        result = await self.conn.execute(
            update(export_jobs)
            .where(export_jobs.c.id == job_id, export_jobs.c.status == JobStatus.PROCESSING,
                   export_jobs.c.attempt == attempt)
            .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
        )
        return result.rowcount == 1

    async def complete(self, job_id: str, attempt: int, *, file_path: str, file_name: str, export_size: int,
                       warnings: list[str]) -> Row | None:
        now = utcnow()
        job = await self._transition(
            COMPLETE, job_id, now=now, attempt=attempt,
            values={"completed_at": now, "file_path": file_path, "file_name": file_name, "export_size": export_size,
                    "warnings": warnings, "progress": 100.0, "lease_expires_at": None, "stage": "compression",
                    "message": "Export ready"},
        )
        if job is not None:
            processing_time = (now - job.started_at).total_seconds()
            await self.conn.execute(
                update(export_jobs).where(export_jobs.c.id == job_id).values(processing_time=processing_time)
            )
            await self._record(job, ev.Completed(
                **self._base(job, now), completed_at=iso(now), processing_time=processing_time,
                export_size=export_size, file_name=file_name,
                download_url=self.public_url + download_path(job.project_id, job.id), warnings=warnings,
            ))
        return job

    async def fail(self, job_id: str, attempt: int, *, error: str, code: str, retryable: bool,
                   lease_expired_before: datetime | None = None) -> Row | None:
        now = utcnow()
        guard = [] if lease_expired_before is None else [export_jobs.c.lease_expires_at < lease_expired_before]
        job = await self._transition(
            FAIL, job_id, now=now, attempt=attempt, guard=guard,
            values={"failed_at": now, "error": error, "error_code": code, "retryable": retryable,
                    "lease_expires_at": None},
        )
        if job is not None:
            await self._record(job, ev.Failed(**self._base(job, now), failed_at=iso(now), error=error, code=code,
                                              retryable=retryable))
        return job

    async def requeue(self, job_id: str, attempt: int, *, lease_expired_before: datetime | None) -> Row | None:
        """Hand a job back to the queue: its lease expired (reaper) or its worker shut down (None)."""
        now = utcnow()
        guard = [] if lease_expired_before is None else [export_jobs.c.lease_expires_at < lease_expired_before]
        job = await self._transition(
            REQUEUE, job_id, now=now, attempt=attempt, guard=guard,
            values={"lease_expires_at": None, "stage": None, "message": "Waiting to be retried"},
        )
        if job is not None:
            await self._record(job, ev.Queued(**self._base(job, now), queued_at=iso(now),
                                              position=await self.queue_position(job), attempt=job.attempt))
        return job

    async def cancel(self, job_id: str, *, reason: CancelReason, cancelled_by: str | None,
                     user_id: str | None = None, project_id: str | None = None) -> Row | None:
        """Cancel a pending or processing job; with `user_id`/`project_id`, only if it is theirs."""
        now = utcnow()
        guard = []
        if user_id is not None:
            guard.append(export_jobs.c.user_id == user_id)
        if project_id is not None:
            guard.append(export_jobs.c.project_id == project_id)
        job = await self._transition(
            CANCEL, job_id, now=now, guard=guard,
            values={"cancelled_at": now, "reason": reason, "cancelled_by": cancelled_by,
                    "previous_status": export_jobs.c.status, "lease_expires_at": None,
                    "message": "Export cancelled"},
        )
        if job is not None:
            await self._record(job, ev.Cancelled(
                **self._base(job, now), cancelled_at=iso(now), reason=reason, cancelled_by=cancelled_by,
                previous_status=job.previous_status, progress=job.progress,
            ), extra_room=cancelled_by)
        return job

    # -- helpers ---------------------------------------------------------------

    async def _transition(self, transition: Transition, job_id: str, *, now: datetime, values: dict[str, Any],
                          attempt: int | None = None, guard: Sequence[Any] = ()) -> Row | None:
        """The one guarded UPDATE of a transition. None: the job was not in a source state (or not ours)."""
        conditions = [export_jobs.c.id == job_id,
                      export_jobs.c.status.in_([status.value for status in transition.sources]), *guard]
        if transition.fenced:
            if attempt is None:
                raise ValueError(f"{transition.name} is fenced: it needs the worker's attempt")
            conditions.append(export_jobs.c.attempt == attempt)
        statement = (
            update(export_jobs)
            .where(*conditions)
            .values(status=transition.target, seq=export_jobs.c.seq + 1, updated_at=now, **values)
            .returning(*export_jobs.c)
        )
        return (await self.conn.execute(statement)).one_or_none()

    @staticmethod
    def _base(job: Row, now: datetime) -> dict[str, Any]:
        return {"job_id": job.id, "project_id": job.project_id, "user_id": job.user_id, "seq": job.seq,
                "status": job.status, "timestamp": iso(now)}

    async def _record(self, job: Row, payload: ev.EventBase, extra_room: str | None = None) -> None:
        data = payload.to_json()
        await self.conn.execute(
            insert(export_events).values(job_id=job.id, seq=job.seq, type=payload.type, payload=data,
                                         created_at=utcnow())
        )
        rooms = (job.user_id,) if extra_room in (None, job.user_id) else (job.user_id, extra_room)
        self.events.append(ev.EventRecord(job_id=job.id, seq=job.seq, type=payload.type, payload=data, rooms=rooms))
