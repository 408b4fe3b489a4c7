"""Two exports of one user never share a file name, even when they complete at the same moment."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from exportd.domain.filenames import export_file_names
from exportd.domain.requests import Credentials, ExportRequest
from tests.conftest import until_another_waits_for_a_lock, users_row_held

STARTED = datetime(2026, 11, 30, 14, 32, tzinfo=UTC)


async def new_job(world, user_id: str | None = None, project_id: str | None = None):
    return await world.runtime.store.apply(lambda repo: repo.create_job(
        project_id=project_id or world.project_id, user_id=user_id or world.user_id,
        options=ExportRequest().options.to_json(), project_name="Demo spheroids"))


async def name_for(world, job) -> str:
    names = export_file_names("Demo spheroids", STARTED, job.id)
    return await world.runtime.store.apply(lambda repo: repo.unused_export_name(job.user_id, job.id, names))


async def take(world, job, name: str) -> None:
    await world.runtime.store.apply(lambda repo: repo.conn.exec_driver_sql(
        "UPDATE export_jobs SET file_name = '%s' WHERE id = '%s'" % (name, job.id)))


async def test_the_first_export_of_a_minute_has_the_plain_name_and_later_ones_a_short_then_a_whole_id(world):
    await world.runtime.engine.stop()  # we record the names ourselves
    first, second, third = [await new_job(world) for _ in range(3)]
    plain, short, _ = export_file_names("Demo spheroids", STARTED, second.id)
    assert await name_for(world, first) == plain
    await take(world, first, plain)
    assert await name_for(world, second) == short
    # a job whose plain and short names are both taken falls back to its whole id
    third_plain, third_short, third_whole = export_file_names("Demo spheroids", STARTED, third.id)
    await take(world, second, third_short)
    assert third_plain == plain
    assert await name_for(world, third) == third_whole


async def test_another_users_export_with_the_same_name_does_not_make_a_name_taken(world):
    await world.runtime.engine.stop()
    other = await world.services.register(Credentials(email="bob@example.com", password="correct horse"))
    project = await world.services.create_project(other.id, "Demo spheroids")
    theirs, mine = await new_job(world, other.id, project.id), await new_job(world)
    plain = export_file_names("Demo spheroids", STARTED, mine.id)[0]
    await take(world, theirs, plain)
    assert await name_for(world, mine) == plain


async def test_a_completion_waiting_on_another_that_takes_the_name_gets_the_next_one(world, backend):
    """Forced interleaving on PostgreSQL: another transaction holds the user's row and has written
    the plain name, not yet committed; the completion must wait for it and then see the name taken.
    (SQLite has one writer: its transactions never interleave.)"""
    if backend != "postgres":
        pytest.skip("one writer on SQLite: write transactions cannot interleave")
    await world.runtime.engine.stop()
    first, second = await new_job(world), await new_job(world)
    plain, short, _ = export_file_names("Demo spheroids", STARTED, second.id)
    async with users_row_held(world.user_id) as (other, transaction):
        await other.execute("UPDATE export_jobs SET file_name = $1 WHERE id = $2", plain, first.id)
        waiting = asyncio.create_task(name_for(world, second))
        await until_another_waits_for_a_lock(other, "the completion to wait for the user's row")
        assert not waiting.done()
        await transaction.commit()
        assert await asyncio.wait_for(waiting, 10) == short
