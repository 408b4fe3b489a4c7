"""The job state machine's statements, built once with bind parameters.

A transition's UPDATE depends only on the transition, which guards it adds,
which columns it sets and whose clock it reads; each combination is built the
first time it is needed and reused, so the hot path never rebuilds or
re-hashes a statement.

The clock. On PostgreSQL a statement reads the database's own time where it
runs (``DB_CLOCK``: the transaction's ``now()``), so a transition costs no
separate ``SELECT now()`` and every node stamps and compares leases by one
clock. On SQLite the time is this process's, passed as the ``now`` parameter.
"""

from __future__ import annotations

from functools import cache

from sqlalchemy import Float, and_, bindparam, exists, func, insert, literal, literal_column, or_, select, update

from exportd.domain.jobs import ACTIVE, JobStatus, Transition
from exportd.store.tables import UTCDateTime, export_events, export_jobs, project_shares, projects, users

jobs = export_jobs


def status_in(statuses):
    """A transition's guard on the job's status, ``status IS NOT DISTINCT FROM …`` ORed (an IN of a list is an
    expanding parameter, re-rendered every run).

    For a column that is never NULL that is equality, but written so that no index can serve it: neither an index
    on the status nor a partial index whose predicate names it (migration 0007) can be matched to it. A guarded
    transition then always finds its job by the primary key. With ``status = …`` the planner, on statistics taken
    while the queue was empty, believed pending jobs rare and scanned every one of them to find one (a claim read
    the whole backlog)."""
    return or_(*(jobs.c.status.is_not_distinct_from(literal(status.value)) for status in sorted(statuses)))


def status_among(statuses, table=jobs):
    """A read's filter on the status, ``status = '…'`` or ``status IN ('…', …)``, written as the predicate of the
    partial index that holds just those jobs (migration 0007), values and all: SQLite uses a partial index only
    for the very same term, and PostgreSQL only when it knows the values, whatever its plan cache does."""
    values = [literal_column(f"'{status.value}'") for status in sorted(statuses)]
    return table.c.status == values[0] if len(values) == 1 else table.c.status.in_(values)


#: extra WHERE conditions a transition may add, by name
GUARDS = {
    "owner": jobs.c.user_id == bindparam("guard_user_id"),
    "project": jobs.c.project_id == bindparam("guard_project_id"),
    "lease_expired": jobs.c.lease_expires_at < bindparam("guard_lease_before"),
    "progress_not_above": jobs.c.progress <= bindparam("new_progress"),
    #: fences a transition that is not always a worker's: that attempt still holds the job (a requeued job is
    #: pending with its last attempt's number, and no attempt holds it)
    "held_by": and_(jobs.c.attempt == bindparam("guard_attempt"), status_in((JobStatus.PROCESSING,))),
}

#: SET values computed from the row itself rather than passed in
COMPUTED = {
    "attempt": jobs.c.attempt + 1,
    "previous_status": jobs.c.status,
}

#: the database's clock inside a statement, as naive UTC like every stored timestamp (PostgreSQL): the
#: transaction's start, the same value in each of its statements
DB_CLOCK = func.timezone("UTC", func.now(), type_=UTCDateTime)


def clock(db_clock: bool):
    """The time a statement stamps: the database's where it runs, or the ``now`` parameter (this process's)."""
    return DB_CLOCK if db_clock else bindparam("now")


def lease_from_now(db_clock: bool):
    """A lease's end: ``lease_seconds`` after the database's now, or the ``new_lease_expires_at`` parameter."""
    if not db_clock:
        return bindparam("new_lease_expires_at")
    return DB_CLOCK + func.make_interval(0, 0, 0, 0, 0, 0, bindparam("lease_seconds", type_=Float))


@cache
def transition(t: Transition, guards: tuple[str, ...], columns: tuple[str, ...], stamped: tuple[str, ...] = (),
               lease: bool = False, db_clock: bool = False):
    """UPDATE … WHERE id AND status IN sources [AND attempt] [AND guards] SET status, seq+1, … RETURNING *.

    `updated_at` and the `stamped` columns are set to the statement's clock; with `lease`, the lease runs
    out `lease_seconds` after it."""
    conditions = [jobs.c.id == bindparam("job_id"), status_in(t.sources)]
    if t.fenced:
        conditions.append(jobs.c.attempt == bindparam("guard_attempt"))
    conditions.extend(GUARDS[name] for name in guards)
    now = clock(db_clock)
    values = {name: COMPUTED.get(name, bindparam(f"new_{name}")) for name in columns}
    values.update({name: now for name in stamped})
    if lease:
        values["lease_expires_at"] = lease_from_now(db_clock)
    return (
        update(jobs)
        .where(*conditions)
        .values(status=t.target.value, seq=jobs.c.seq + 1, updated_at=now, **values)
        .returning(*jobs.c)
    )


#: the database's clock read on its own, for a transaction whose statements need it as a value (PostgreSQL)
DB_NOW = select(DB_CLOCK)
USER_BY_ID = select(users).where(users.c.id == bindparam("user_id"))
INSERT_JOB = insert(jobs).returning(*jobs.c)
INSERT_EVENT = insert(export_events)
JOB_BY_ID = select(jobs).where(jobs.c.id == bindparam("job_id"))


def _renew_lease(db_clock: bool):
    """The lease renewal of a worker's attempt: fenced by status and attempt, no event."""
    return (
        update(jobs)
        .where(jobs.c.id == bindparam("job_id"), status_in((JobStatus.PROCESSING,)),
               jobs.c.attempt == bindparam("guard_attempt"))
        .values(lease_expires_at=lease_from_now(db_clock))
    )


RENEW_LEASE = _renew_lease(db_clock=False)
RENEW_LEASE_DB_CLOCK = _renew_lease(db_clock=True)
QUEUE_POSITION = select(func.count()).where(
    status_among((JobStatus.PENDING,)),
    jobs.c.created_at <= bindparam("created_at"),
    jobs.c.id != bindparam("job_id"),
)
#: the columns a new job is given (`Repository.create_job`)
NEW_JOB_COLUMNS = ("id", "project_id", "user_id", "status", "seq", "attempt", "progress", "options", "project_name",
                   "warnings")
_new_job = (insert(jobs).values(created_at=DB_CLOCK, updated_at=DB_CLOCK, **{c: bindparam(c) for c in NEW_JOB_COLUMNS})
            .returning(*jobs.c).cte("new_job"))
_earlier = jobs.alias("earlier")
#: a new job stamped by the database's clock, returned with its queue position (PostgreSQL): `QUEUE_POSITION` of
#: the new row in the same statement, whose snapshot does not hold the new row yet
INSERT_QUEUED_JOB_DB_CLOCK = select(*_new_job.c, select(func.count()).where(
    status_among((JobStatus.PENDING,), _earlier),
    _earlier.c.created_at <= _new_job.c.created_at,
    _earlier.c.id != _new_job.c.id).scalar_subquery().label("queue_position"))
LAST_PROCESSING_TIME = (
    select(jobs.c.processing_time)
    .where(jobs.c.project_id == bindparam("project_id"), status_among((JobStatus.COMPLETED,)))
    .order_by(jobs.c.completed_at.desc())
    .limit(1)
)

#: a live project the user owns or has a share of
VISIBLE_TO_USER = and_(
    projects.c.deleted_at.is_(None),
    or_(
        projects.c.owner_id == bindparam("user_id"),
        exists().where(project_shares.c.project_id == projects.c.id,
                       project_shares.c.user_id == bindparam("user_id")),
    ),
)
PROJECT_FOR_USER = select(projects).where(projects.c.id == bindparam("project_id"), VISIBLE_TO_USER)
JOB_FOR_USER = (
    select(jobs)
    .join(projects, projects.c.id == jobs.c.project_id)
    .where(jobs.c.id == bindparam("job_id"), jobs.c.project_id == bindparam("project_id"),
           jobs.c.user_id == bindparam("user_id"), VISIBLE_TO_USER)
)
#: counts a user's active jobs, but never past `limit`: admission only asks "fewer than the limit?"
ACTIVE_FOR_USER = select(func.count()).select_from(
    select(jobs.c.id)
    .where(jobs.c.user_id == bindparam("user_id"), status_among(ACTIVE))
    .limit(bindparam("limit"))
    .subquery()
)
#: the user's row, locked for the rest of the transaction where the database has row locks (PostgreSQL; SQLite's
#: one writer serialises anyway): no row, no account
LOCK_USER = select(users.c.id).where(users.c.id == bindparam("user_id")).with_for_update()
#: admission's read, made under the user's lock: the project if the user may see it, with the user's active
#: jobs counted up to `limit`
PROJECT_FOR_ADMISSION = select(*projects.c, ACTIVE_FOR_USER.scalar_subquery().label("active_exports")).where(
    projects.c.id == bindparam("project_id"), VISIBLE_TO_USER)
