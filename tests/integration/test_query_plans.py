"""No hot statement reads more jobs as the backlog or a user's history grows (migration 0007).

A guarded transition finds its one job by the primary key, even on statistics
taken while the queue was empty (the moment a burst arrives), and the
admission's count of a user's active jobs reads active jobs only. On PostgreSQL
the tests count the index entries and rows each statement read in its
transaction (``pg_stat_xact_*``), so they hold whatever plan the server
picks; on SQLite they read the query plan.
"""

from __future__ import annotations

import os

import asyncpg
import pytest

from exportd.domain.jobs import CANCEL, CancelReason, JobStatus
from exportd.domain.requests import ExportRequest
from exportd.store import direct
from exportd.store import statements as sql

BURST = 300  #: pending jobs created at once, after the statistics were taken on an empty queue
#: what one job's lookup may read: its index entry and row, and the foreign-key checks of its event row
ONE_JOB = 10

#: index entries and table rows read so far in this transaction, over the jobs table and its indexes
READ_SO_FAR = """
SELECT (SELECT sum(pg_stat_get_xact_tuples_returned(indexrelid)) FROM pg_index
         WHERE indrelid = 'export_jobs'::regclass)
     + pg_stat_get_xact_tuples_returned('export_jobs'::regclass)
"""


async def burst(world) -> list:
    """`BURST` pending jobs of the user in one transaction, created after PostgreSQL's statistics saw none."""
    await world.runtime.engine.stop()
    dsn = os.environ.get("EXPORTD_DATABASE_URL", "")
    if dsn.startswith("postgresql"):
        connection = await asyncpg.connect(dsn.replace("+asyncpg", ""))
        try:
            await connection.execute("ANALYZE export_jobs")
        finally:
            await connection.close()
    options = ExportRequest().options.to_json()
    return await world.runtime.store.apply(lambda repo: [
        repo.create_job(project_id=world.project_id, user_id=world.user_id, options=options,
                        project_name="Spheroids") for _ in range(BURST)])


async def reads_of(statement: str, *args) -> int:
    """What `statement` read on PostgreSQL, in a transaction rolled back afterwards."""
    connection = await asyncpg.connect(os.environ["EXPORTD_DATABASE_URL"].replace("+asyncpg", ""))
    try:
        transaction = connection.transaction()
        await transaction.start()
        before = await connection.fetchval(READ_SO_FAR)
        await connection.fetch(statement, *args)
        read = await connection.fetchval(READ_SO_FAR) - before
        await transaction.rollback()
        return read
    finally:
        await connection.close()


async def vacuum() -> None:
    connection = await asyncpg.connect(os.environ["EXPORTD_DATABASE_URL"].replace("+asyncpg", ""))
    try:
        await connection.execute("VACUUM export_jobs")
    finally:
        await connection.close()


def sqlite_plan(repo, statement, **params) -> str:
    compiled = statement.compile(dialect=repo.conn.dialect)
    values = compiled.construct_params(params)
    rows = repo.conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled),
                                     tuple(values[name] for name in compiled.positiontup))
    return "\n".join(row[3] for row in rows)


async def test_a_claim_reads_one_job_however_long_the_queue(world, backend):
    jobs = await burst(world)
    newest = jobs[-1]
    if backend == "postgres":
        assert await reads_of(direct.CLAIM, newest.id, 60.0) <= ONE_JOB
        return
    plan = await world.runtime.store.query(lambda repo: sqlite_plan(
        repo, sql.transition(CANCEL, (), ("reason",)), job_id=newest.id, new_reason="x", now=newest.created_at))
    assert "USING INDEX sqlite_autoindex_export_jobs_1 (id=?)" in plan, plan


async def test_the_state_machines_statements_read_one_job_however_long_the_queue(world, backend):
    """The transitions built by ``statements.transition`` (SQLite's claim, every store's cancel, fail, requeue)."""
    jobs = await burst(world)
    newest, other = jobs[-1], jobs[-2]

    def transitions_and_reads(repo):
        if backend != "postgres":
            return sqlite_plan(repo, sql.transition(CANCEL, (), ("reason",)), job_id=newest.id, new_reason="x",
                               now=newest.created_at)
        reads = []
        for transition in (lambda: repo.claim(newest.id, lease_seconds=60),
                           lambda: repo.cancel(other.id, reason=CancelReason.USER_CANCELLED,
                                               cancelled_by=world.user_id)):
            before = repo.conn.exec_driver_sql(READ_SO_FAR).scalar()
            assert transition() is not None
            reads.append(repo.conn.exec_driver_sql(READ_SO_FAR).scalar() - before)
        return reads

    found = await world.runtime.store.apply(transitions_and_reads)
    if backend == "postgres":
        assert max(found) <= ONE_JOB, f"claim, cancel read {found} jobs"
    else:
        assert "USING INDEX sqlite_autoindex_export_jobs_1 (id=?)" in found, found


async def test_the_admission_reads_the_users_active_jobs_not_their_history(world, backend):
    jobs = await burst(world)
    await world.runtime.store.apply(lambda repo: repo.conn.exec_driver_sql(
        "UPDATE export_jobs SET status = 'completed' WHERE user_id = '%s'" % world.user_id))
    if backend == "postgres":
        await vacuum()  # as autovacuum would: the finished jobs' entries leave the partial indexes
        # the whole admission: the project, the user's active jobs counted up to the limit, the INSERT, the
        # queue position (no pending job left), the event row
        read = await reads_of(direct.QUEUE, world.user_id, world.project_id, "00000000-new-job", "{}", None, 5)
        assert read <= ONE_JOB, f"the admission read {read} jobs; the user has {len(jobs)} finished ones"
        return
    plans = await world.runtime.store.query(lambda repo: (
        sqlite_plan(repo, sql.ACTIVE_FOR_USER, user_id=world.user_id, limit=5),
        sqlite_plan(repo, sql.QUEUE_POSITION, created_at=jobs[-1].created_at, job_id=jobs[-1].id)))
    assert "USING INDEX ix_export_jobs_active_user (user_id=?)" in plans[0], plans[0]
    assert "USING INDEX ix_export_jobs_pending_created" in plans[1], plans[1]


async def test_the_hot_statements_are_planned_once_per_connection_not_at_every_call(world, backend):
    """PostgreSQL plans a prepared statement for its first five calls, then keeps one generic plan unless it
    estimates that one dearer than planning each call anew; the completion's did, once, and paid a plan at
    every completion. Each hot statement here runs a dozen times on one connection."""
    if backend != "postgres":
        pytest.skip("SQLite prepares its statements once; there is no plan cache to choose")
    jobs = await burst(world)
    connection = await asyncpg.connect(os.environ["EXPORTD_DATABASE_URL"].replace("+asyncpg", ""))
    calls = 12
    try:
        for number, job in enumerate(jobs[:calls]):
            await connection.fetchrow(direct.QUEUE_UNLIMITED, world.user_id, world.project_id, f"new-{number}", "{}",
                                      None)
            await connection.fetchrow(direct.QUEUE, world.user_id, world.project_id, f"limited-{number}", "{}", None,
                                      10_000)
            claimed = await connection.fetchrow(direct.CLAIM, job.id, 60.0)
            await connection.fetchrow(direct.PROGRESS, job.id, claimed["attempt"], 60.0, 50.0, "annotations",
                                      "half", 1, 2, None, None, "processing")
            names = [f"Spheroids_{number}.zip", f"Spheroids_{number}_{job.id[:8]}.zip", f"Spheroids_{job.id}.zip"]
            await connection.fetchrow(direct.COMPLETE, job.id, claimed["attempt"], world.user_id, "x", names, 1,
                                      "[]", 0.5, "")
            await connection.fetchrow(direct.CANCEL, jobs[calls + number].id, world.user_id, world.project_id)
        plans = await connection.fetch("SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements")
    finally:
        await connection.close()
    hot = {direct.QUEUE_UNLIMITED: "admission", direct.QUEUE: "limited admission", direct.CLAIM: "claim",
           direct.PROGRESS: "progress", direct.COMPLETE: "completion", direct.CANCEL: "cancel"}
    custom = {hot[row["statement"]]: row["custom_plans"] for row in plans if row["statement"] in hot}
    assert set(custom) == set(hot.values())
    assert all(planned <= 5 for planned in custom.values()), f"custom plans of {calls} calls each: {custom}"
