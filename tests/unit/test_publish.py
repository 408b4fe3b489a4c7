"""Committed events reach every listener: at once in the committing caller, and all of them even if
the caller is cancelled while a listener waits."""

from __future__ import annotations

import asyncio

import pytest

from exportd.store.migrate import upgrade
from exportd.store.uow import Store


@pytest.fixture
async def store(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"
    await upgrade(url)
    store = Store(url)
    try:
        yield store
    finally:
        await store.close()


async def test_listeners_that_do_not_wait_run_in_the_committing_task_itself(store):
    heard = []

    async def listener(records):
        heard.append((asyncio.current_task(), [r.type.value for r in records]))

    store.subscribe(listener)
    user = await store.apply(lambda repo: repo.add_user("ada@example.com", "hash"))
    project = await store.apply(lambda repo: repo.add_project(user.id, "P"))
    await store.apply(lambda repo: repo.create_job(project_id=project.id, user_id=user.id, options={},
                                                   project_name="P"))

    assert heard == [(asyncio.current_task(), ["export:queued"])]  # no task in between, no turn of the loop


async def test_a_caller_cancelled_while_a_listener_waits_still_publishes_to_every_listener(store):
    entered, release, done = asyncio.Event(), asyncio.Event(), asyncio.Event()
    waited, later = [], []

    async def slow(records):
        entered.set()
        waited.append(await release.wait())  # what it awaited is handed back to it
        waited.append([r.type.value for r in records])

    def after(records):
        later.extend(r.type.value for r in records)
        done.set()

    user = await store.apply(lambda repo: repo.add_user("ada@example.com", "hash"))
    project = await store.apply(lambda repo: repo.add_project(user.id, "P"))
    store.subscribe(slow)
    store.subscribe(after)
    caller = asyncio.create_task(store.apply(lambda repo: repo.create_job(
        project_id=project.id, user_id=user.id, options={}, project_name="P")))
    await asyncio.wait_for(entered.wait(), 5)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert later == []  # still held in the slow listener
    release.set()
    await asyncio.wait_for(done.wait(), 5)

    assert waited == [True, ["export:queued"]]
    assert later == ["export:queued"]


async def test_an_error_of_a_listener_after_it_waited_reaches_the_caller(store):
    entered, release = asyncio.Event(), asyncio.Event()

    async def failing(records):
        entered.set()
        await release.wait()
        raise RuntimeError("listener broke")

    user = await store.apply(lambda repo: repo.add_user("ada@example.com", "hash"))
    project = await store.apply(lambda repo: repo.add_project(user.id, "P"))
    store.subscribe(failing)
    caller = asyncio.create_task(store.apply(lambda repo: repo.create_job(
        project_id=project.id, user_id=user.id, options={}, project_name="P")))
    await asyncio.wait_for(entered.wait(), 5)
    release.set()

    with pytest.raises(RuntimeError, match="listener broke"):
        await asyncio.wait_for(caller, 5)
