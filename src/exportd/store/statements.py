"""The job state machine's statements, built once with bind parameters.

A transition's UPDATE depends only on the transition, which guards it adds and
which columns it sets; each combination is built the first time it is needed
and reused, so the hot path never rebuilds or re-hashes a statement.
"""

from __future__ import annotations

from functools import cache

from sqlalchemy import and_, bindparam, exists, func, insert, literal, or_, select, update

from exportd.domain.jobs import ACTIVE, JobStatus, Transition
from exportd.store.tables import export_events, export_jobs, project_shares, projects, users

jobs = export_jobs

#: extra WHERE conditions a transition may add, by name
GUARDS = {
    "owner": jobs.c.user_id == bindparam("guard_user_id"),
    "project": jobs.c.project_id == bindparam("guard_project_id"),
    "lease_expired": jobs.c.lease_expires_at < bindparam("guard_lease_before"),
    "progress_not_above": jobs.c.progress <= bindparam("new_progress"),
    #: fences a transition that is not always a worker's: that attempt still holds the job (a requeued job is
    #: pending with its last attempt's number, and no attempt holds it)
    "held_by": and_(jobs.c.attempt == bindparam("guard_attempt"), jobs.c.status == JobStatus.PROCESSING.value),
}

#: SET values computed from the row itself rather than passed in
COMPUTED = {
    "attempt": jobs.c.attempt + 1,
    "previous_status": jobs.c.status,
}


def status_in(statuses):
    """`status IN (…)` as ORs of plain parameters: an IN of a list is an expanding parameter, re-rendered every run."""
    return or_(*(jobs.c.status == literal(status.value) for status in sorted(statuses)))


@cache
def transition(t: Transition, guards: tuple[str, ...], columns: tuple[str, ...]):
    """UPDATE … WHERE id AND status IN sources [AND attempt] [AND guards] SET status, seq+1, … RETURNING *."""
    conditions = [jobs.c.id == bindparam("job_id"), status_in(t.sources)]
    if t.fenced:
        conditions.append(jobs.c.attempt == bindparam("guard_attempt"))
    conditions.extend(GUARDS[name] for name in guards)
    values = {name: COMPUTED.get(name, bindparam(f"new_{name}")) for name in columns}
    return (
        update(jobs)
        .where(*conditions)
        .values(status=t.target.value, seq=jobs.c.seq + 1, updated_at=bindparam("now"), **values)
        .returning(*jobs.c)
    )


#: the database's clock, as naive UTC like every stored timestamp (PostgreSQL)
DB_NOW = select(func.timezone("UTC", func.now()))
USER_BY_ID = select(users).where(users.c.id == bindparam("user_id"))
INSERT_JOB = insert(jobs).returning(*jobs.c)
INSERT_EVENT = insert(export_events)
JOB_BY_ID = select(jobs).where(jobs.c.id == bindparam("job_id"))
RENEW_LEASE = (
    update(jobs)
    .where(jobs.c.id == bindparam("job_id"), jobs.c.status == JobStatus.PROCESSING.value,
           jobs.c.attempt == bindparam("guard_attempt"))
    .values(lease_expires_at=bindparam("new_lease_expires_at"))
)
QUEUE_POSITION = select(func.count()).where(
    jobs.c.status == JobStatus.PENDING.value,
    jobs.c.created_at <= bindparam("created_at"),
    jobs.c.id != bindparam("job_id"),
)
LAST_PROCESSING_TIME = (
    select(jobs.c.processing_time)
    .where(jobs.c.project_id == bindparam("project_id"), jobs.c.status == JobStatus.COMPLETED.value)
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
    .where(jobs.c.user_id == bindparam("user_id"), status_in(ACTIVE))
    .limit(bindparam("limit"))
    .subquery()
)
