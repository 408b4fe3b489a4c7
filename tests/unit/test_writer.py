"""SQLite's group-committing writer: a group commits as one, yet each caller gets only its own outcome."""

from __future__ import annotations

import asyncio
import threading

import pytest

from exportd.domain.errors import EmailTaken
from exportd.domain.jobs import CancelReason
from exportd.store.migrate import upgrade
from exportd.store.uow import Store


@pytest.fixture
async def store(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'w.db'}"
    await upgrade(url)
    store = Store(url)
    published: list = []
    store.subscribe(published.extend)
    store.published = published
    try:
        yield store
    finally:
        await store.close()


async def hold_the_writer(store: Store) -> tuple[threading.Event, asyncio.Task]:
    """Occupy the writer thread so the next transactions queue up and commit as one group."""
    busy, release = threading.Event(), threading.Event()

    def wait(repo):
        busy.set()
        release.wait(10)

    held = asyncio.create_task(store.apply(wait))
    await asyncio.to_thread(busy.wait, 10)
    return release, held


async def test_a_failing_transaction_in_a_group_fails_alone_and_the_others_commit(store):
    release, held = await hold_the_writer(store)

    def add(email):
        return lambda repo: repo.add_user(email, "hash").email

    def duplicate(repo):
        repo.add_user("zed@example.com", "hash")
        raise EmailTaken()

    calls = [store.apply(add("ada@example.com")), store.apply(duplicate), store.apply(add("bob@example.com"))]
    tasks = [asyncio.create_task(call) for call in calls]
    await asyncio.sleep(0)  # let all three reach the queue behind the held transaction
    release.set()
    await held
    results = await asyncio.gather(*tasks, return_exceptions=True)

    assert store._backend.write_queue.group_sizes[3] == 1  # the three committed as one group
    assert results[0] == "ada@example.com" and results[2] == "bob@example.com"
    assert isinstance(results[1], EmailTaken)
    emails = await store.query(lambda repo: sorted(r.email for r in repo.conn.exec_driver_sql(
        "SELECT email FROM users").all()))
    assert emails == ["ada@example.com", "bob@example.com"]  # the failed one left nothing behind


async def test_transactions_in_a_group_apply_in_submission_order_and_publish_only_committed_events(store):
    user = await store.apply(lambda repo: repo.add_user("ada@example.com", "hash"))
    project = await store.apply(lambda repo: repo.add_project(user.id, "P"))
    job = await store.apply(lambda repo: repo.create_job(project_id=project.id, user_id=user.id, options={},
                                                         project_name="P"))
    store.published.clear()
    release, held = await hold_the_writer(store)

    def fail_after_claiming(repo):
        repo.claim(job.id, lease_seconds=60)
        raise RuntimeError("boom")

    tasks = [asyncio.create_task(store.apply(fail_after_claiming)),
             asyncio.create_task(store.apply(lambda repo: repo.cancel(
                 job.id, reason=CancelReason.USER_CANCELLED, cancelled_by=user.id))),
             asyncio.create_task(store.apply(lambda repo: repo.claim(job.id, lease_seconds=60)))]
    await asyncio.sleep(0)
    release.set()
    await held
    failed, cancelled, late_claim = await asyncio.gather(*tasks, return_exceptions=True)

    assert store._backend.write_queue.group_sizes[3] == 1
    assert isinstance(failed, RuntimeError)
    assert cancelled.status == "cancelled" and cancelled.previous_status == "pending"
    assert late_claim is None  # submitted after the cancel: the guard saw it
    assert [(r.seq, r.type.value) for r in store.published] == [(2, "export:cancelled")]
