"""The prepared path (SQLite's hot statements on the DB-API cursor) stores and reads what SQLAlchemy does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from exportd.domain.jobs import CANCEL, CLAIM
from exportd.store import statements as sql
from exportd.store.migrate import upgrade
from exportd.store.prepared import Prepared, prepared_for
from exportd.store.repository import Repository, new_id
from exportd.store.tables import export_events, export_jobs, projects, users
from exportd.store.uow import _sqlite_engine

MOMENT = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)


@pytest.fixture
async def connection(tmp_path, backend):
    if backend != "sqlite":
        pytest.skip("the prepared path is SQLite's alone")
    url = f"sqlite+aiosqlite:///{tmp_path / 'exportd.sqlite3'}"
    await upgrade(url)
    engine = _sqlite_engine(url.replace("+aiosqlite", ""), writer=True)
    conn = engine.connect()
    with conn.begin():
        conn.execute(insert(users).values(id="u1", email="a@example.com", password_hash="x", created_at=MOMENT))
        conn.execute(insert(projects).values(id="p1", owner_id="u1", name="P", created_at=MOMENT))
    yield conn
    conn.close()
    engine.dispose()


def job_values(**overrides):
    values = {
        "id": new_id(), "project_id": "p1", "user_id": "u1", "status": "pending", "seq": 1, "attempt": 0,
        "progress": 0.0, "options": {"annotationFormats": ["coco"], "scale": 0.5, "nested": {"é": [1, None]}},
        "project_name": "Zellen · 1", "created_at": MOMENT, "updated_at": MOMENT, "warnings": ["a", "b"],
    }
    values.update(overrides)
    return values


def read_back(conn, job_id):
    return conn.execute(select(export_jobs).where(export_jobs.c.id == job_id)).one()


def test_a_prepared_insert_stores_what_sqlalchemy_reads_back_and_returns_the_same_row(connection):
    statements = prepared_for(connection.dialect)
    values = job_values()
    with connection.begin():
        returned = statements.execute(connection, sql.INSERT_JOB, values, column_keys=tuple(values)).one()
    stored = read_back(connection, values["id"])

    assert returned._fields == tuple(stored._fields)
    assert tuple(returned) == tuple(stored)
    assert stored.created_at == MOMENT and stored.created_at.tzinfo is not None
    assert stored.options == values["options"] and stored.warnings == ["a", "b"]
    assert stored.progress == 0.0 and stored.completed_at is None


def test_a_prepared_read_equals_sqlalchemys_column_for_column_and_type_for_type(connection):
    values = job_values(started_at=MOMENT, lease_expires_at=MOMENT + timedelta(seconds=30), status="processing")
    with connection.begin():
        connection.execute(insert(export_jobs).values(**values))
    statements = prepared_for(connection.dialect)
    with connection.begin():
        prepared = statements.execute(connection, sql.JOB_BY_ID, {"job_id": values["id"]}).one()
        ours = connection.execute(sql.JOB_BY_ID, {"job_id": values["id"]}).one()

    assert tuple(prepared) == tuple(ours)
    assert [type(value) for value in prepared] == [type(value) for value in ours]
    with connection.begin():
        assert statements.execute(connection, sql.JOB_BY_ID, {"job_id": "nobody"}).one_or_none() is None


def test_a_prepared_guarded_transition_changes_the_row_as_sqlalchemy_would(connection):
    first, second = job_values(), job_values()
    with connection.begin():
        connection.execute(insert(export_jobs), [first, second])
    later = MOMENT + timedelta(minutes=1)
    claim = sql.transition(CLAIM, (), ("attempt", "lease_expires_at", "started_at"))
    params = {"job_id": None, "now": later, "new_started_at": later, "new_lease_expires_at": later}
    statements = prepared_for(connection.dialect)

    with connection.begin():
        by_prepared = statements.execute(connection, claim, {**params, "job_id": first["id"]}).one()
        by_sqlalchemy = connection.execute(claim, {**params, "job_id": second["id"]}).one()
        again = statements.execute(connection, claim, {**params, "job_id": first["id"]}).one_or_none()

    assert again is None  # the guard holds: a processing job is not claimed twice
    assert by_prepared.status == "processing" and by_prepared.seq == 2 and by_prepared.attempt == 1
    assert by_prepared.started_at == later
    same = [name for name in by_prepared._fields if name != "id"]
    assert [getattr(by_prepared, n) for n in same] == [getattr(by_sqlalchemy, n) for n in same]
    assert read_back(connection, first["id"])[1:] == read_back(connection, second["id"])[1:]


def test_computed_columns_scalars_and_rowcounts(connection):
    job = job_values()
    with connection.begin():
        connection.execute(insert(export_jobs).values(**job))
    statements = prepared_for(connection.dialect)
    cancel = sql.transition(CANCEL, ("owner",), ("cancelled_at", "previous_status", "reason"))
    with connection.begin():
        active = statements.execute(connection, sql.ACTIVE_FOR_USER, {"user_id": "u1", "limit": 5}).scalar_one()
        row = statements.execute(connection, cancel, {
            "job_id": job["id"], "now": MOMENT, "guard_user_id": "u1", "new_cancelled_at": MOMENT,
            "new_reason": "user_cancelled"}).one()
        renewed = statements.execute(connection, sql.RENEW_LEASE, {
            "job_id": job["id"], "guard_attempt": 0, "new_lease_expires_at": MOMENT})
        after = statements.execute(connection, sql.ACTIVE_FOR_USER, {"user_id": "u1", "limit": 5}).scalar_one()

    assert active == 1 and after == 0
    assert row.previous_status == "pending" and row.status == "cancelled"  # computed from the row itself
    assert renewed.rowcount == 0  # RENEW_LEASE guards on processing


def test_an_event_insert_through_the_repository_round_trips(connection):
    job = job_values()
    with connection.begin():
        repo = Repository(connection)
        created = repo.create_job(project_id="p1", user_id="u1", options=job["options"], project_name="P")
    stored = connection.execute(select(export_events).where(export_events.c.job_id == created.id)).one()

    assert stored.seq == 1 and stored.type == "export:queued"
    assert stored.payload == repo.events[0].payload
    assert stored.payload["jobId"] == created.id and stored.payload["position"] == 0


def test_a_missing_parameter_is_an_error_not_a_null(connection):
    prepared = Prepared(sql.JOB_BY_ID, connection.dialect)
    with pytest.raises(KeyError):
        prepared.parameters({})


def test_other_dialects_use_sqlalchemys_own_execution():
    from sqlalchemy.dialects import postgresql

    assert prepared_for(postgresql.asyncpg.dialect()) is None


def test_an_insert_that_would_leave_a_python_default_uncomputed_is_refused(connection):
    values = job_values()
    del values["attempt"]  # the column's default=0 is computed by SQLAlchemy's execution, which is skipped here
    with pytest.raises(ValueError, match="attempt"):
        Prepared(sql.INSERT_JOB, connection.dialect, column_keys=values)
