"""Every read and write exportd makes, on one connection inside one transaction.

The repository is synchronous: a transaction runs where its connection lives
(SQLite's writer thread, or asyncpg's greenlet bridge), and the store awaits
each call as one trip. See ``uow.py``.

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

from sqlalchemy import Connection, Row, delete, func, insert, or_, select, update

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
    EventType,
    JobStatus,
    Transition,
)
from exportd.store import points
from exportd.store import statements as sql
from exportd.store.prepared import prepared_for
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


_GUARD_PARAMS = {"owner": "guard_user_id", "project": "guard_project_id", "lease_expired": "guard_lease_before",
                 "held_by": "guard_attempt"}


def download_path(project_id: str, job_id: str) -> str:
    return f"/api/projects/{project_id}/export/{job_id}/download"


class Repository:
    def __init__(self, conn: Connection, *, public_url: str = "",
                 events: list[ev.EventRecord] | None = None) -> None:
        self.conn = conn
        self.public_url = public_url
        self.events: list[ev.EventRecord] = [] if events is None else events  #: published after commit
        self._prepared = prepared_for(conn.dialect)
        self._db_clock = conn.dialect.name == "postgresql"
        self._now: datetime | None = None

    def now(self) -> datetime:
        """The store's clock. On PostgreSQL the database's own (`now()`: the transaction's start), so leases,
        deadlines and the reaper agree on every node; on SQLite this process's, which is the machine's.

        On PostgreSQL the job statements read that clock where they run (`sql.DB_CLOCK`) and the time they
        stamped is kept for the rest of the transaction; only a transaction that needs the time before any
        of them asks the database for it here, once."""
        if self._db_clock:
            if self._now is None:
                self._now = self.conn.execute(sql.DB_NOW).scalar_one()
            return self._now
        return utcnow()

    def ping(self) -> None:
        self.conn.exec_driver_sql("SELECT 1")

    def probe_write(self) -> None:
        """Write a row as large as an account and delete it again, in this transaction: nobody ever sees it,
        but the commit needs room in the database like any real write (no table exists for this alone)."""
        probe_id = new_id()
        self.conn.execute(insert(users).values(id=probe_id, email=f"probe-{probe_id}@exportd.invalid",
                                               password_hash="!" * 255, created_at=self.now()))
        self.conn.execute(delete(users).where(users.c.id == probe_id))

    # -- users -----------------------------------------------------------------

    def add_user(self, email: str, password_hash: str) -> Row:
        row = {"id": new_id(), "email": email, "password_hash": password_hash, "created_at": self.now()}
        self.conn.execute(insert(users).values(row))
        return self.user(row["id"])

    def user(self, user_id: str) -> Row | None:
        return self._run(sql.USER_BY_ID, {"user_id": user_id}).one_or_none()

    def user_by_email(self, email: str) -> Row | None:
        return (self.conn.execute(select(users).where(users.c.email == email))).one_or_none()

    def lock_existing_user(self, user_id: str) -> bool:
        """Lock the user's row for the rest of the transaction (PostgreSQL; SQLite's single writer serialises
        already) and say whether the account exists: one statement for both."""
        return self._run(sql.LOCK_USER, {"user_id": user_id}).one_or_none() is not None

    def lock_user(self, user_id: str) -> None:
        """Serialise a user's writes that check-then-insert (SQLite's single writer already does)."""
        if self.conn.dialect.name != "sqlite":
            self.conn.execute(select(users.c.id).where(users.c.id == user_id).with_for_update())

    # -- projects and shares ---------------------------------------------------

    def add_project(self, owner_id: str, name: str) -> Row:
        row = {"id": new_id(), "owner_id": owner_id, "name": name, "created_at": self.now()}
        self.conn.execute(insert(projects).values(row))
        return self.project(row["id"])

    def project(self, project_id: str) -> Row | None:
        query = select(projects).where(projects.c.id == project_id, projects.c.deleted_at.is_(None))
        return (self.conn.execute(query)).one_or_none()

    def project_for(self, user_id: str, project_id: str) -> Row | None:
        return self._run(sql.PROJECT_FOR_USER, {"user_id": user_id, "project_id": project_id}).one_or_none()

    def project_for_admission(self, user_id: str, project_id: str, *, limit: int) -> Row | None:
        """`project_for`, with `active_exports`: the user's pending and processing jobs counted up to `limit`.
        Read it under the user's lock (`lock_existing_user`), so that no concurrent admission slips past."""
        return self._run(sql.PROJECT_FOR_ADMISSION,
                         {"user_id": user_id, "project_id": project_id, "limit": limit}).one_or_none()

    def projects_for(self, user_id: str) -> Sequence[Row]:
        counts = (
            select(images.c.project_id, func.count().label("image_count"))
            .group_by(images.c.project_id)
            .subquery()
        )
        query = (
            select(projects, func.coalesce(counts.c.image_count, 0).label("image_count"))
            .outerjoin(counts, counts.c.project_id == projects.c.id)
            .where(sql.VISIBLE_TO_USER)
            .order_by(projects.c.created_at, projects.c.id)
        )
        return self.conn.execute(query, {"user_id": user_id}).all()

    def delete_project(self, project_id: str) -> None:
        self.conn.execute(update(projects).where(projects.c.id == project_id).values(deleted_at=self.now()))

    def add_share(self, project_id: str, user_id: str) -> bool:
        exists = self.conn.execute(
            select(project_shares.c.user_id).where(
                project_shares.c.project_id == project_id, project_shares.c.user_id == user_id
            )
        )
        if exists.one_or_none():
            return False
        self.conn.execute(
            insert(project_shares).values(project_id=project_id, user_id=user_id, created_at=self.now())
        )
        return True

    def remove_share(self, project_id: str, user_id: str) -> bool:
        result = self.conn.execute(
            delete(project_shares).where(project_shares.c.project_id == project_id, project_shares.c.user_id == user_id)
        )
        return result.rowcount > 0

    def shares(self, project_id: str) -> Sequence[Row]:
        query = (
            select(users.c.id, users.c.email, project_shares.c.created_at)
            .join(project_shares, project_shares.c.user_id == users.c.id)
            .where(project_shares.c.project_id == project_id)
            .order_by(project_shares.c.created_at)
        )
        return (self.conn.execute(query)).all()

    # -- images and polygons ---------------------------------------------------

    def add_image(self, project_id: str, *, image_id: str, name: str, width: int, height: int,
                        content_type: str, size: int, storage_key: str) -> Row:
        position = (
            self.conn.execute(
                select(func.coalesce(func.max(images.c.position), 0)).where(images.c.project_id == project_id)
            )
        ).scalar_one() + 1
        self.conn.execute(
            insert(images).values(
                id=image_id, project_id=project_id, position=position, name=name, width=width, height=height,
                content_type=content_type, size=size, storage_key=storage_key, created_at=self.now(),
            )
        )
        return (self.conn.execute(select(images).where(images.c.id == image_id))).one()

    def image(self, project_id: str, image_id: str) -> Row | None:
        query = select(images).where(images.c.id == image_id, images.c.project_id == project_id)
        return (self.conn.execute(query)).one_or_none()

    def images_of(self, project_id: str, image_ids: Iterable[str] | None = None) -> Sequence[Row]:
        query = select(images).where(images.c.project_id == project_id).order_by(images.c.position)
        if image_ids is not None:
            query = query.where(images.c.id.in_(list(image_ids)))
        return (self.conn.execute(query)).all()

    def images_like(self, project_id: str, *, prefixes: Iterable[str], sizes: Iterable[int]) -> Sequence[Row]:
        """The project's images, in order, whose name starts with one of `prefixes` or whose size in
        bytes is one of `sizes`: all that an upload's duplicate check and its unique names look at."""
        names = [images.c.name.like(_escape_like(prefix) + "%", escape="\\") for prefix in set(prefixes)]
        query = (select(images).where(images.c.project_id == project_id,
                                      or_(images.c.size.in_(sorted(set(sizes))), *names))
                 .order_by(images.c.position))
        return (self.conn.execute(query)).all()

    def image_ids_of(self, project_id: str) -> set[str]:
        rows = self.conn.execute(select(images.c.id).where(images.c.project_id == project_id))
        return {row.id for row in rows}

    def set_polygons(self, image_id: str, shapes: Sequence[dict[str, Any]]) -> None:
        self.conn.execute(delete(polygons).where(polygons.c.image_id == image_id))
        if shapes:
            self.conn.execute(
                insert(polygons),
                [{"image_id": image_id, "position": index, **shape, "points": points.pack(shape["points"])}
                 for index, shape in enumerate(shapes)],
            )

    def polygon_counts(self, image_ids: Sequence[str]) -> dict[str, int]:
        if not image_ids:
            return {}
        query = (
            select(polygons.c.image_id, func.count().label("count"))
            .where(polygons.c.image_id.in_(list(image_ids)))
            .group_by(polygons.c.image_id)
        )
        return {row.image_id: row.count for row in self.conn.execute(query)}

    def polygons_of(self, image_ids: Sequence[str]) -> Sequence[Row]:
        """(image_id, id, kind, points, parent_id, class_name) of the images' polygons, in order."""
        if not image_ids:
            return []
        c = polygons.c
        query = (
            select(c.image_id, c.id, c.kind, c.points, c.parent_id, c.class_name)
            .where(polygons.c.image_id.in_(list(image_ids)))
            .order_by(polygons.c.image_id, polygons.c.position)
        )
        return (self.conn.execute(query)).all()

    # -- export jobs: reads ----------------------------------------------------

    def job(self, job_id: str) -> Row | None:
        return self._run(sql.JOB_BY_ID, {"job_id": job_id}).one_or_none()

    def job_for(self, user_id: str, project_id: str, job_id: str) -> Row | None:
        """The job, if `user_id` started it on `project_id` and may still see that project."""
        return self._run(sql.JOB_FOR_USER,
                                 {"job_id": job_id, "project_id": project_id, "user_id": user_id}).one_or_none()

    def history(self, user_id: str, project_id: str, limit: int, offset: int = 0) -> Sequence[Row]:
        query = (
            select(export_jobs)
            .where(
                export_jobs.c.user_id == user_id,
                export_jobs.c.project_id == project_id,
                export_jobs.c.discarded_at.is_(None),
            )
            .order_by(export_jobs.c.created_at.desc(), export_jobs.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return (self.conn.execute(query)).all()

    def events_after(self, job_id: str, after_seq: int, limit: int | None = None) -> list[dict[str, Any]]:
        query = (
            select(export_events.c.payload)
            .where(export_events.c.job_id == job_id, export_events.c.seq > after_seq)
            .order_by(export_events.c.seq)
        )
        if limit is not None:
            query = query.limit(limit)
        return [row.payload for row in self.conn.execute(query)]

    def active_jobs(self, *, project_id: str | None = None, user_id: str | None = None) -> Sequence[Row]:
        query = select(export_jobs).where(sql.status_among(ACTIVE))
        if project_id is not None:
            query = query.where(export_jobs.c.project_id == project_id)
        if user_id is not None:
            query = query.where(export_jobs.c.user_id == user_id)
        return (self.conn.execute(query.order_by(export_jobs.c.created_at))).all()

    def pending_job_ids(self) -> list[str]:
        query = (
            select(export_jobs.c.id)
            .where(sql.status_among((JobStatus.PENDING,)))
            .order_by(export_jobs.c.created_at, export_jobs.c.id)
        )
        return [row.id for row in self.conn.execute(query)]

    def stale_pending_ids(self, older_than_seconds: float) -> list[str]:
        """Jobs pending, unchanged for `older_than_seconds`: their broker message may have been lost."""
        query = (
            select(export_jobs.c.id)
            .where(sql.status_among((JobStatus.PENDING,)),
                   export_jobs.c.updated_at < self.now() - timedelta(seconds=older_than_seconds))
            .order_by(export_jobs.c.created_at, export_jobs.c.id)
        )
        return [row.id for row in self.conn.execute(query)]

    def job_ids_updated_since(self, since: datetime) -> list[str]:
        """Jobs with a transition at or after `since` (a listener catching up after a deaf spell)."""
        query = select(export_jobs.c.id).where(export_jobs.c.updated_at >= since).order_by(export_jobs.c.updated_at)
        return [row.id for row in self.conn.execute(query)]

    def expired_leases(self, now: datetime) -> Sequence[Row]:
        query = select(export_jobs).where(
            sql.status_among((JobStatus.PROCESSING,)), export_jobs.c.lease_expires_at < now
        )
        return (self.conn.execute(query)).all()

    def overdue_jobs(self, started_before: datetime) -> Sequence[Row]:
        query = select(export_jobs).where(
            sql.status_among((JobStatus.PROCESSING,)), export_jobs.c.started_at < started_before
        )
        return (self.conn.execute(query)).all()

    def expired_files(self, completed_before: datetime) -> Sequence[Row]:
        query = select(export_jobs.c.id, export_jobs.c.file_path).where(
            sql.status_among((JobStatus.COMPLETED,)),
            export_jobs.c.completed_at < completed_before,
            export_jobs.c.expired_at.is_(None),
        )
        return (self.conn.execute(query)).all()

    def mark_expired(self, job_id: str) -> None:
        self.conn.execute(
            update(export_jobs).where(export_jobs.c.id == job_id).values(expired_at=self.now(), file_path=None)
        )

    def mark_discarded(self, job_id: str) -> None:
        self.conn.execute(
            update(export_jobs).where(export_jobs.c.id == job_id).values(discarded_at=self.now(), file_path=None)
        )

    def folder_owners(self, job_ids: Iterable[str]) -> dict[str, Row]:
        """Of `job_ids`, the jobs that still exist: what the janitor needs to judge their folders."""
        ids = list(job_ids)
        if not ids:
            return {}
        c = export_jobs.c
        query = select(c.id, c.status, c.attempt, c.file_path).where(c.id.in_(ids))
        return {row.id: row for row in self.conn.execute(query)}

    def queue_position(self, job: Row) -> int:
        """How many pending jobs were queued before this one."""
        return self._run(sql.QUEUE_POSITION, {"created_at": job.created_at, "job_id": job.id}).scalar_one()

    # -- idempotency -----------------------------------------------------------

    def idempotent_job(self, user_id: str, key: str) -> Row | None:
        query = select(idempotency_keys).where(idempotency_keys.c.user_id == user_id, idempotency_keys.c.key == key)
        return (self.conn.execute(query)).one_or_none()

    def remember_idempotency_key(self, user_id: str, key: str, request_hash: str, job_id: str) -> None:
        self.conn.execute(
            insert(idempotency_keys).values(
                user_id=user_id, key=key, request_hash=request_hash, job_id=job_id, created_at=self.now()
            )
        )

    # -- export jobs: the state machine ----------------------------------------

    def create_job(self, *, project_id: str, user_id: str, options: dict[str, Any], project_name: str) -> Row:
        """Insert a `pending` job with its `export:queued` event (seq 1)."""
        row = {"id": new_id(), "project_id": project_id, "user_id": user_id, "status": JobStatus.PENDING.value,
               "seq": 1, "attempt": 0, "progress": 0.0, "options": options, "project_name": project_name,
               "warnings": []}
        if self._db_clock:  # stamped by the database, its queue position counted by the same statement
            job = self._run(sql.INSERT_QUEUED_JOB_DB_CLOCK, row).one()
            now = self._now = job.created_at
            position = job.queue_position
        else:
            now = utcnow()
            job = self._insert(sql.INSERT_JOB, {**row, "created_at": now, "updated_at": now}).one()
            position = self.queue_position(job)
        self._record(job, ev.Queued(**self._base(job, now), queued_at=iso(now), position=position, attempt=0))
        return job

    def claim(self, job_id: str, *, lease_seconds: float) -> Row | None:
        job = self._transition(CLAIM, job_id, stamped=("started_at",), lease_seconds=lease_seconds,
                               progress=0.0, attempt=None)  # each attempt starts again
        if job is not None:
            now = job.updated_at
            estimate = self._run(sql.LAST_PROCESSING_TIME, {"project_id": job.project_id}).scalar()
            self._record(job, ev.Started(**self._base(job, now), started_at=iso(now),
                                         estimated_duration=estimate, attempt=job.attempt))
        return job

    def progress(self, job_id: str, attempt: int, *, progress: float, stage: str, current: int, total: int,
                 message: str, eta_seconds: float | None, lease_seconds: float,
                 item: str | None = None) -> Row | None:
        """Record progress and renew the lease; nothing happens when the job is no longer this attempt's,
        or progress would fall. `item` names what the stage just finished (usually an image)."""
        job = self._transition(PROGRESS, job_id, fence=attempt, guards={"progress_not_above": None},
                               lease_seconds=lease_seconds, progress=progress, stage=stage, message=message)
        if job is not None:
            now = job.updated_at
            self._record(job, ev.Progress(
                **self._base(job, now), progress=progress, stage=stage,
                stage_progress=ev.StageProgress(current=current, total=total, current_item=item or None),
                message=message, eta_seconds=eta_seconds, phase=ev.phase_of(progress),
            ))
        return job

    def renew_lease(self, job_id: str, attempt: int, *, lease_seconds: float) -> bool:
        if self._db_clock:
            result = self._run(sql.RENEW_LEASE_DB_CLOCK, {
                "job_id": job_id, "guard_attempt": attempt, "lease_seconds": float(lease_seconds)})
        else:
            result = self._run(sql.RENEW_LEASE, {
                "job_id": job_id, "guard_attempt": attempt,
                "new_lease_expires_at": utcnow() + timedelta(seconds=lease_seconds)})
        return result.rowcount == 1

    def unused_export_name(self, user_id: str, job_id: str, names: Sequence[str]) -> str:
        """The first of `names` that no other export of the user has (its last should be unique by
        construction, e.g. contain the job id). Call it in the completing transaction: the user's row
        lock serialises the choice."""
        self.lock_user(user_id)
        query = select(export_jobs.c.file_name).where(
            export_jobs.c.user_id == user_id, export_jobs.c.file_name.in_(list(names)), export_jobs.c.id != job_id)
        taken = set(self.conn.execute(query).scalars())
        return next((name for name in names if name not in taken), names[-1])

    def complete(self, job_id: str, attempt: int, *, file_path: str, file_name: str, export_size: int,
                 warnings: list[str], processing_time: float) -> Row | None:
        job = self._transition(COMPLETE, job_id, fence=attempt, stamped=("completed_at",), file_path=file_path,
                               file_name=file_name, export_size=export_size, warnings=warnings, progress=100.0,
                               lease_expires_at=None, stage="compression", message="Export ready",
                               processing_time=processing_time)
        if job is not None:
            now = job.updated_at
            self._record(job, ev.Completed(
                **self._base(job, now), completed_at=iso(now), processing_time=processing_time,
                export_size=export_size, file_name=file_name,
                download_url=self.public_url + download_path(job.project_id, job.id), warnings=warnings,
            ))
        return job

    def fail(self, job_id: str, attempt: int, *, error: str, code: str, retryable: bool,
             lease_expired_before: datetime | None = None) -> Row | None:
        guards = {} if lease_expired_before is None else {"lease_expired": lease_expired_before}
        job = self._transition(FAIL, job_id, fence=attempt, guards=guards, stamped=("failed_at",), error=error,
                               error_code=code, retryable=retryable, lease_expires_at=None)
        if job is not None:
            now = job.updated_at
            self._record(job, ev.Failed(**self._base(job, now), failed_at=iso(now), error=error, code=code,
                                        retryable=retryable))
        return job

    def requeue(self, job_id: str, attempt: int, *, lease_expired_before: datetime | None) -> Row | None:
        """Hand a job back to the queue: its lease expired (reaper) or its worker shut down (None)."""
        guards = {} if lease_expired_before is None else {"lease_expired": lease_expired_before}
        job = self._transition(REQUEUE, job_id, fence=attempt, guards=guards, lease_expires_at=None,
                               progress=0.0, stage=None, message="Waiting to be retried")
        if job is not None:
            now = job.updated_at
            self._record(job, ev.Queued(**self._base(job, now), queued_at=iso(now),
                                        position=self.queue_position(job), attempt=job.attempt))
        return job

    def cancel(self, job_id: str, *, reason: CancelReason, cancelled_by: str | None,
               user_id: str | None = None, project_id: str | None = None, attempt: int | None = None) -> Row | None:
        """Cancel a pending or processing job; with `user_id`/`project_id`, only if it is theirs; with
        `attempt` (a time limit, judged on one attempt's start), only while that attempt still holds it."""
        guards: dict[str, Any] = {}
        if user_id is not None:
            guards["owner"] = user_id
        if project_id is not None:
            guards["project"] = project_id
        if attempt is not None:
            guards["held_by"] = attempt
        job = self._transition(CANCEL, job_id, guards=guards, stamped=("cancelled_at",), reason=reason.value,
                               cancelled_by=cancelled_by, previous_status=None, lease_expires_at=None,
                               message="Export cancelled")
        if job is not None:
            now = job.updated_at
            self._record(job, ev.Cancelled(
                **self._base(job, now), cancelled_at=iso(now), reason=reason, cancelled_by=cancelled_by,
                previous_status=job.previous_status, progress=job.progress, message=ev.CANCEL_MESSAGES[reason],
            ), extra_room=cancelled_by)
        return job

    # -- helpers ---------------------------------------------------------------

    def _transition(self, transition: Transition, job_id: str, *, fence: int | None = None,
                    guards: dict[str, Any] | None = None, stamped: tuple[str, ...] = (),
                    lease_seconds: float | None = None, **values: Any) -> Row | None:
        """The one guarded UPDATE of a transition. None: the job was not in a source state (or not ours).

        `values` are the columns to set; a value of None for a column in `sql.COMPUTED` (attempt,
        previous_status) means "computed from the row", e.g. attempt = attempt + 1. `updated_at` and the
        `stamped` columns get the store's clock, which the row returns; `lease_seconds` sets the lease to
        end that long after it. On PostgreSQL the statement reads the database's clock itself.
        """
        if transition.fenced and fence is None:
            raise ValueError(f"{transition.name} is fenced: it needs the worker's attempt")
        guards = guards or {}
        statement = sql.transition(transition, tuple(sorted(guards)), tuple(sorted(values)), stamped,
                                   lease_seconds is not None, self._db_clock)  # positional: a cheaper cache key
        params: dict[str, Any] = {"job_id": job_id, "guard_attempt": fence}
        if self._db_clock:
            if lease_seconds is not None:
                params["lease_seconds"] = float(lease_seconds)
        else:
            params["now"] = now = utcnow()
            if lease_seconds is not None:
                params["new_lease_expires_at"] = now + timedelta(seconds=lease_seconds)
        params.update({f"new_{name}": value for name, value in values.items() if name not in sql.COMPUTED})
        params.update({_GUARD_PARAMS[name]: value for name, value in guards.items() if name in _GUARD_PARAMS})
        job = self._run(statement, params).one_or_none()
        if job is not None and self._db_clock:
            self._now = job.updated_at  # the transaction's clock: later statements of it stamp the same time
        return job

    def _run(self, statement, params: dict[str, Any]):
        """One of the hot statements of `sql`: prepared on SQLite (see prepared.py), as usual elsewhere."""
        if self._prepared is None:
            return self.conn.execute(statement, params)
        return self._prepared.execute(self.conn, statement, params)

    def _insert(self, statement, params: dict[str, Any]):
        if self._prepared is None:
            return self.conn.execute(statement, params)
        return self._prepared.execute(self.conn, statement, params, column_keys=tuple(params))

    @staticmethod
    def _base(job: Row, now: datetime) -> dict[str, Any]:
        return {"job_id": job.id, "project_id": job.project_id, "user_id": job.user_id, "seq": job.seq,
                "status": job.status, "timestamp": iso(now)}

    def _record(self, job: Row, payload: ev.EventBase, extra_room: str | None = None) -> None:
        data = payload.to_json()
        self._insert(sql.INSERT_EVENT, {"job_id": job.id, "seq": job.seq, "type": payload.type,
                                             "payload": data, "created_at": self.now()})
        rooms = (job.user_id,) if extra_room in (None, job.user_id) else (job.user_id, extra_room)
        record = ev.EventRecord(job_id=job.id, seq=job.seq, type=payload.type, payload=data, rooms=rooms)
        self.events.append(record)
        if record.type == EventType.PROGRESS:  # the trigger leaves progress to the COMMIT (announcing.py)
            announce = getattr(self.conn.connection.driver_connection, "announce_at_commit", None)
            if announce is not None:
                announce(record)


def _escape_like(text: str) -> str:
    """`text` matched literally in a LIKE pattern with escape character backslash."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
