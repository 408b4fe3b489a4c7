"""An export's hot path on PostgreSQL: each transition one statement, straight on asyncpg.

Every export makes the same four trips to the store: its admission (an API
node's), then the worker's CLAIM, the read of the project it exports and the
COMPLETE; and while it runs, its progress (up to one report a quarter second by
default), the write it repeats most. Through ``Store.apply`` each is a
SQLAlchemy transaction (pool checkout, the greenlet bridge, BEGIN, every
statement through the execution machinery, COMMIT), which cost a worker more
CPU than the statements themselves. Here each runs on the asyncpg connection
SQLAlchemy's pool holds, with no machinery between:

* the admission locks the user's row (which proves the account exists) and
  then, in ONE statement read under that lock, checks the project and the
  user's active count and INSERTs the job with its ``export:queued`` row; when
  it admits nothing, the caller decides again through ``Repository``, which
  raises the right error (BEGIN, two statements, COMMIT). Where no per-user
  limit is set there is nothing to count, so no lock: ONE statement in
  autocommit checks the project and INSERTs;
* the owner's cancel is ONE statement in autocommit: the guarded UPDATE
  (``pending`` or ``processing``, the owner's, in that project) and the INSERT
  of its ``export:cancelled`` row; when it changes nothing, the caller decides
  through ``Repository`` whether that is a cancel already made, a finished
  export or no such export;
* the claim is ONE statement in autocommit: the guarded UPDATE (compare-and-set
  on ``pending``), the INSERT of its ``export:started`` row with the same
  ``seq``, and the estimate read for it, as a data-modifying ``WITH``;
* the project's images and polygons are plain reads (READ COMMITTED gives each
  statement of a transaction its own snapshot anyway);
* each progress report is ONE statement: the UPDATE guarded as
  ``Repository.progress`` guards it (``processing``, the attempt, progress not
  falling) that renews the lease, and the INSERT of its ``export:progress``
  row; BEGIN, the statement, COMMIT, because its notification goes with the
  COMMIT (below);
* the completion is ONE statement in autocommit: it chooses the first of the
  export's names that no other export of the user has, makes the guarded
  UPDATE (on ``processing`` and the attempt: fenced) and INSERTs the
  ``export:completed`` row. Names are unique per user by index (migration
  0008): when another completion took the same name after this statement's
  snapshot was taken, the index makes it wait for that one and fail, and the
  statement runs again, with a snapshot that sees the name taken.

Each event's payload is built in SQL by ``json_build_object``, field for field
and in the order of its model in ``domain/events.py`` (``tests/integration/
test_direct_transitions.py`` holds them equal, and the timestamps equal to
``iso()`` to the microsecond). The trigger (migrations 0004, 0005) NOTIFYs them when
the statement's transaction commits, as for every event row but progress, which
the connection announces with the COMMIT (``announcing.py``); the events are
handed to this process's listeners after the commit, as ``Store.apply`` does.

The same transitions through ``Repository`` (SQLite, and any other caller)
stay the definition these statements follow; ``Store.queue_job``,
``Store.claim``, ``Store.progress``, ``Store.project_rows`` and
``Store.complete`` choose.
"""

from __future__ import annotations

import json
from collections import namedtuple
from collections.abc import Callable, Sequence
from datetime import UTC
from typing import Any

import asyncpg
from sqlalchemy import JSON
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from exportd.domain.errors import StoreUnavailable
from exportd.domain.events import CANCEL_MESSAGES, EventRecord, phase_of
from exportd.domain.jobs import CancelReason, EventType, JobStatus
from exportd.faults import store_fault
from exportd.store.tables import NAMES_INDEX, UTCDateTime, export_jobs

#: the columns of a job row, in the table's order
COLUMNS = tuple(column.name for column in export_jobs.c)
JobRow = namedtuple("JobRow", COLUMNS)
ImageRow = namedtuple("ImageRow", ("id", "name", "width", "height", "storage_key"))
_TIMES = frozenset(column.name for column in export_jobs.c if isinstance(column.type, UTCDateTime))
_JSONS = frozenset(column.name for column in export_jobs.c if isinstance(column.type, JSON))
_NOW = "timezone('UTC', now())"  #: the transaction's clock as naive UTC, like every stored time (statements.DB_CLOCK)


def iso_sql(column: str) -> str:
    """SQL for ``repository.iso(column)``: ISO 8601 in UTC with a ``Z``, microseconds only when there are any
    (Python's ``isoformat`` leaves them out of a whole second)."""
    return (f"to_char({column}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN extract(microseconds FROM {column})"
            f"::bigint % 1000000 = 0 THEN '' ELSE to_char({column}, '.US') END || 'Z'")


def guard_status(status: JobStatus) -> str:
    """A transition's guard on the job's status, which no index can serve (``statements.status_in``): the job is
    found by its primary key whatever the statistics say about the status."""
    return f"status IS NOT DISTINCT FROM '{status.value}'"


def _base(event: EventType, clock: str = "updated_at") -> str:
    """The fields of ``EventBase`` and the event's ``type``, in the model's order, from the moved row."""
    return (f"'jobId', id, 'projectId', project_id, 'userId', user_id, 'seq', seq, 'status', status, "
            f"'timestamp', {iso_sql(clock)}, 'type', '{event.value}'")


_RETURN = "SELECT {columns}, event.payload AS event_payload FROM moved, event".format(
    columns=", ".join(f"moved.{name}" for name in COLUMNS))

#: CLAIM (pending → processing, attempt + 1, progress from 0) with its export:started row ($1 job, $2 lease seconds)
CLAIM = f"""
WITH moved AS (
    UPDATE export_jobs
       SET status = '{JobStatus.PROCESSING.value}', seq = seq + 1, attempt = attempt + 1, progress = 0,
           updated_at = {_NOW}, started_at = {_NOW}, lease_expires_at = {_NOW} + make_interval(secs => $2)
     WHERE id = $1 AND {guard_status(JobStatus.PENDING)}
 RETURNING *
), event AS (
    INSERT INTO export_events (job_id, seq, type, payload, created_at)
    SELECT id, seq, '{EventType.STARTED.value}', json_build_object({_base(EventType.STARTED)},
               'startedAt', {iso_sql('updated_at')},
               'estimatedDuration', (SELECT earlier.processing_time FROM export_jobs AS earlier
                                      WHERE earlier.project_id = moved.project_id
                                        AND earlier.status = '{JobStatus.COMPLETED.value}'
                                      ORDER BY earlier.completed_at DESC LIMIT 1),
               'attempt', attempt),
           updated_at
      FROM moved
 RETURNING payload
)
{_RETURN}
"""

#: PROGRESS (processing, fenced by the attempt, progress not falling; the lease renewed) with its export:progress
#: row. $1 job, $2 attempt, $3 lease seconds, $4 progress, $5 stage, $6 message, $7 the stage's current item
#: number, $8 its total, $9 the item's name or NULL, $10 the estimate of the seconds left or NULL, $11 the phase
PROGRESS = f"""
WITH moved AS (
    UPDATE export_jobs
       SET status = '{JobStatus.PROCESSING.value}', seq = seq + 1, updated_at = {_NOW},
           lease_expires_at = {_NOW} + make_interval(secs => $3), progress = $4, stage = $5, message = $6
     WHERE id = $1 AND {guard_status(JobStatus.PROCESSING)} AND attempt = $2 AND progress <= $4
 RETURNING *
), event AS (
    INSERT INTO export_events (job_id, seq, type, payload, created_at)
    SELECT id, seq, '{EventType.PROGRESS.value}', json_build_object({_base(EventType.PROGRESS)},
               'progress', progress, 'stage', stage,
               'stageProgress', json_build_object('current', $7::bigint, 'total', $8::bigint,
                                                  'currentItem', $9::text),
               'message', message, 'etaSeconds', $10::float8, 'phase', $11::text),
           updated_at
      FROM moved
 RETURNING payload
)
{_RETURN}
"""

#: the most names a completion chooses among (``export_file_names`` gives three: plain, short id, whole id)
MAX_NAMES = 3
#: the candidates as a fixed VALUES list, element by element: with ``unnest`` of the array PostgreSQL
#: estimated a generic plan dearer than one made for each call's array, and planned the statement anew at
#: every completion (custom plans, one each time, measured: 0.54 against 0.35 ms a completion)
_CANDIDATES = ", ".join(f"({rank}, ($5::text[])[{rank}])" for rank in range(1, MAX_NAMES + 1))

#: COMPLETE (processing → completed, fenced by the attempt) with its export:completed row. Each candidate name is
#: looked up on its own in ix_export_jobs_user_file_name (a scalar subquery per candidate: a NOT EXISTS would be
#: planned as an anti join, which on a freshly grown table's stale statistics read all the user's exports).
#: $1 job, $2 attempt, $3 user, $4 file path, $5 the names in order of preference (the last unique by construction), $6 size,
#: $7 warnings (JSON), $8 processing time, $9 the public URL the download path hangs from
COMPLETE = f"""
WITH chosen AS (
    SELECT coalesce(
        (SELECT candidate.name FROM (VALUES {_CANDIDATES}) AS candidate(rank, name)
          WHERE candidate.name IS NOT NULL
            AND (SELECT 1 FROM export_jobs AS other
                  WHERE other.user_id = $3 AND other.file_name = candidate.name AND other.id <> $1 LIMIT 1) IS NULL
          ORDER BY candidate.rank LIMIT 1),
        ($5::text[])[cardinality($5::text[])]) AS name
), moved AS (
    UPDATE export_jobs
       SET status = '{JobStatus.COMPLETED.value}', seq = seq + 1, updated_at = {_NOW}, completed_at = {_NOW},
           file_path = $4, file_name = (SELECT name FROM chosen), export_size = $6, warnings = $7::json,
           progress = 100, lease_expires_at = NULL, stage = 'compression', message = 'Export ready',
           processing_time = $8
     WHERE id = $1 AND {guard_status(JobStatus.PROCESSING)} AND attempt = $2
 RETURNING *
), event AS (
    INSERT INTO export_events (job_id, seq, type, payload, created_at)
    SELECT id, seq, '{EventType.COMPLETED.value}', json_build_object({_base(EventType.COMPLETED)},
               'completedAt', {iso_sql('updated_at')}, 'processingTime', processing_time,
               'exportSize', export_size, 'fileName', file_name,
               'downloadUrl', $9 || '/api/projects/' || project_id || '/export/' || id || '/download',
               'warnings', warnings),
           updated_at
      FROM moved
 RETURNING payload
)
{_RETURN}
"""

#: the user's row, locked until the admission commits; no row, no account (statements.LOCK_USER)
LOCK_EXISTING_USER = "SELECT id FROM users WHERE id = $1 FOR UPDATE"


def _queue(limited: bool) -> str:
    """A new job and its export:queued row, if the user may see the project and, `limited`, has fewer than $6
    active jobs, counted under the user's lock (taken by LOCK_EXISTING_USER just before, so this statement's
    snapshot has every admission that held the lock before). $1 user, $2 project, $3 new id, $4 options (JSON),
    $5 the name the request gave the project, or NULL for its own, $6 the limit."""
    under_limit = f"""\
       AND (SELECT count(*) FROM (SELECT 1 FROM export_jobs AS active
                                   WHERE active.user_id = $1 AND active.status IN ('{JobStatus.PENDING.value}',
                                                                                   '{JobStatus.PROCESSING.value}')
                                   LIMIT $6) AS counted) < $6""" if limited else ""
    return f"""
WITH project AS (
    SELECT projects.id, projects.name FROM projects
     WHERE projects.id = $2 AND projects.deleted_at IS NULL
       AND (projects.owner_id = $1 OR EXISTS (SELECT 1 FROM project_shares AS share
                                               WHERE share.project_id = projects.id AND share.user_id = $1))
{under_limit}
), moved AS (
    INSERT INTO export_jobs (id, project_id, user_id, status, seq, attempt, progress, options, project_name,
                             warnings, created_at, updated_at)
    SELECT $3, project.id, $1, '{JobStatus.PENDING.value}', 1, 0, 0, $4::json, coalesce($5, project.name),
           '[]'::json, {_NOW}, {_NOW}
      FROM project
 RETURNING *
), event AS (
    INSERT INTO export_events (job_id, seq, type, payload, created_at)
    SELECT id, seq, '{EventType.QUEUED.value}', json_build_object({_base(EventType.QUEUED, 'created_at')},
               'queuedAt', {iso_sql('created_at')},
               'position', (SELECT count(*) FROM export_jobs AS earlier
                             WHERE earlier.status = '{JobStatus.PENDING.value}'
                               AND earlier.created_at <= moved.created_at AND earlier.id <> moved.id),
               'attempt', attempt),
           created_at
      FROM moved
 RETURNING payload
)
{_RETURN}
"""


QUEUE = _queue(limited=True)
#: where no per-user limit is set: nothing to count, so no lock, and the statement runs alone in autocommit
QUEUE_UNLIMITED = _queue(limited=False)

#: CANCEL by the job's owner (pending or processing → cancelled, reason user_cancelled) with its export:cancelled
#: row: the owner's cancel route. $1 job, $2 user (the owner, and the canceller), $3 project
CANCEL = f"""
WITH moved AS (
    UPDATE export_jobs
       SET status = '{JobStatus.CANCELLED.value}', seq = seq + 1, updated_at = {_NOW}, cancelled_at = {_NOW},
           reason = '{CancelReason.USER_CANCELLED.value}', cancelled_by = $2, previous_status = status,
           lease_expires_at = NULL, message = 'Export cancelled'
     WHERE id = $1 AND ({guard_status(JobStatus.PENDING)} OR {guard_status(JobStatus.PROCESSING)})
       AND user_id = $2 AND project_id = $3
 RETURNING *
), event AS (
    INSERT INTO export_events (job_id, seq, type, payload, created_at)
    SELECT id, seq, '{EventType.CANCELLED.value}', json_build_object({_base(EventType.CANCELLED)},
               'cancelledAt', {iso_sql('updated_at')}, 'reason', reason, 'cancelledBy', cancelled_by,
               'previousStatus', previous_status, 'progress', progress,
               'message', '{CANCEL_MESSAGES[CancelReason.USER_CANCELLED]}'),
           updated_at
      FROM moved
 RETURNING payload
)
{_RETURN}
"""

IMAGES = ("SELECT id, name, width, height, storage_key FROM images "
          "WHERE project_id = $1 AND ($2::varchar[] IS NULL OR id = ANY($2::varchar[])) ORDER BY position")
POLYGONS = ("SELECT image_id, id, kind, points, parent_id, class_name FROM polygons "
            "WHERE image_id = ANY($1::varchar[]) ORDER BY image_id, position")


class DirectStatements:
    """The hot statements above, each on a connection of `engine`'s pool, returned to it at once."""

    def __init__(self, engine: AsyncEngine, public_url: str) -> None:
        self.engine = engine
        self.public_url = public_url

    async def queue(self, user_id: str, project_id: str, *, job_id: str, options: dict[str, Any],
                    limit: int | None, project_name: str | None) -> tuple[bool, JobRow | None, list[EventRecord]]:
        """(whether the account exists, the new job or None when it was not admitted here, its event);
        `limit` None: no per-user limit."""
        arguments = (user_id, project_id, job_id, json.dumps(options), project_name)

        async def transaction(connection):
            async with connection.transaction():
                if await connection.fetchrow(LOCK_EXISTING_USER, user_id) is None:
                    return False, None
                return True, await connection.fetchrow(QUEUE, *arguments, limit)

        async def alone(connection):
            try:
                return True, await connection.fetchrow(QUEUE_UNLIMITED, *arguments)
            except asyncpg.ForeignKeyViolationError:  # the account went away after the project was read
                return True, None  # decided again through Repository, which finds no account

        exists, row = await self._run(transaction if limit is not None else alone)
        return (exists, *_moved(row, EventType.QUEUED))

    async def cancel(self, job_id: str, *, user_id: str, project_id: str) -> tuple[JobRow | None, list[EventRecord]]:
        """The owner's cancel: None when the job is not theirs, not in that project, or no longer active."""
        return _moved(await self._run(lambda connection: connection.fetchrow(CANCEL, job_id, user_id, project_id)),
                      EventType.CANCELLED)

    async def claim(self, job_id: str, *, lease_seconds: float) -> tuple[JobRow | None, list[EventRecord]]:
        return _moved(await self._run(lambda connection: connection.fetchrow(CLAIM, job_id, float(lease_seconds))),
                      EventType.STARTED)

    async def progress(self, job_id: str, attempt: int, *, progress: float, stage: str, current: int, total: int,
                       message: str, eta_seconds: float | None, lease_seconds: float,
                       item: str | None = None) -> tuple[JobRow | None, list[EventRecord]]:
        """`Repository.progress`, committed: its event is announced with the COMMIT where the connection
        announces (``announcing.py``), and by nobody when it rolls back."""
        async def transaction(connection):
            async with connection.transaction():
                moved = _moved(await connection.fetchrow(
                    PROGRESS, job_id, attempt, float(lease_seconds), float(progress), stage, message, current,
                    total, item or None, None if eta_seconds is None else float(eta_seconds),
                    phase_of(progress)), EventType.PROGRESS)
                announce = getattr(connection, "announce_at_commit", None)
                if announce is not None:
                    for record in moved[1]:
                        announce(record)
                return moved

        return await self._run(transaction)

    async def complete(self, job_id: str, attempt: int, *, user_id: str, file_path: str, names: Sequence[str],
                       export_size: int, warnings: list[str],
                       processing_time: float) -> tuple[JobRow | None, list[EventRecord]]:
        if not 0 < len(names) <= MAX_NAMES:
            raise ValueError(f"a completion chooses among 1 to {MAX_NAMES} names, not {len(names)}")

        async def statement(connection):
            for _ in range(len(names) + 1):
                try:
                    return await connection.fetchrow(COMPLETE, job_id, attempt, user_id, file_path, list(names),
                                                     export_size, json.dumps(warnings), processing_time,
                                                     self.public_url)
                except asyncpg.UniqueViolationError as error:
                    if error.constraint_name != NAMES_INDEX:
                        raise
                    # another completion took the name after our snapshot, and committed: the next turn chooses again
            raise RuntimeError(f"no unused name among {list(names)} after {len(names) + 1} tries")

        return _moved(await self._run(statement), EventType.COMPLETED)

    async def project_rows(self, project_id: str, image_ids: Sequence[str] | None) -> tuple[list, list]:
        """(image rows in order, polygon rows (image_id, id, kind, points, parent_id, class_name) in order)."""
        async def read(connection):
            images = await connection.fetch(IMAGES, project_id, None if image_ids is None else list(image_ids))
            if not images:
                return [], []
            return ([ImageRow(*row) for row in images],
                    await connection.fetch(POLYGONS, [row["id"] for row in images]))

        return await self._run(read)

    async def _run(self, work: Callable[[Any], Any]) -> Any:
        """`work(asyncpg_connection)` on a pooled connection. A dropped or refusing database is StoreUnavailable,
        and a connection that broke is discarded, as ``Store`` does for its SQLAlchemy transactions."""
        try:
            pooled = await self.engine.raw_connection()
        except Exception as error:
            if store_fault(error):
                raise StoreUnavailable() from error
            raise
        try:
            return await work(pooled.driver_connection)
        except Exception as error:
            if store_fault(error) or _broken(error):
                await greenlet_spawn(pooled.invalidate, error)
                raise StoreUnavailable() from error
            raise
        finally:
            await greenlet_spawn(pooled.close)


def _broken(error: BaseException) -> bool:
    """asyncpg's errors of a connection that cannot be used again (see ``uow._invalidate_broken_connections``)."""
    return type(error).__name__ in ("InternalClientError", "InterfaceError", "ConnectionDoesNotExistError")


def _moved(row, event: EventType) -> tuple[JobRow | None, list[EventRecord]]:
    """The moved job as a row like SQLAlchemy's (aware UTC times, JSON decoded) and its one event record."""
    if row is None:
        return None, []
    values = []
    for name, value in zip(COLUMNS, row, strict=False):
        if value is not None and name in _TIMES:
            value = value.replace(tzinfo=UTC)
        elif isinstance(value, str) and name in _JSONS:
            value = json.loads(value)
        values.append(value)
    job = JobRow(*values)
    payload = row["event_payload"]
    if isinstance(payload, str):
        payload = json.loads(payload)
    return job, [EventRecord(job_id=job.id, seq=job.seq, type=event, payload=payload, rooms=(job.user_id,))]
