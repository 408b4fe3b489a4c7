"""SQLite's group-committing writer: a group commits as one, yet each caller gets only its own outcome."""

from __future__ import annotations

import asyncio
import queue
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


class GatedQueue(queue.SimpleQueue):
    """The writer's queue, holding the writer thread right after it took a transaction, before it runs it."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        self.taken = threading.Event()

    def get(self, *args, **kwargs):
        item = super().get(*args, **kwargs)
        if item is not None:
            self.taken.set()
            self.gate.wait(10)
        return item


async def test_an_inline_transaction_runs_on_the_calling_thread_when_the_writer_is_idle(store):
    user = await store.apply(lambda repo: repo.add_user("ada@example.com", "hash"))  # the writer has its connection
    project = await store.apply(lambda repo: repo.add_project(user.id, "P"))
    job = await store.apply(lambda repo: repo.create_job(project_id=project.id, user_id=user.id, options={},
                                                         project_name="P"))
    store.published.clear()
    threads = []

    def cancel(repo):
        threads.append(threading.current_thread())
        return repo.cancel(job.id, reason=CancelReason.USER_CANCELLED, cancelled_by=user.id)

    cancelled = await store.apply(cancel, inline=True)

    assert threads == [threading.current_thread()]  # the event loop's own thread: no hop
    assert store._backend.write_queue.inline_commits == 1
    assert cancelled.status == "cancelled"
    assert [(r.seq, r.type.value) for r in store.published] == [(2, "export:cancelled")]
    stored = await store.query(lambda repo: repo.job(job.id))
    assert stored.status == "cancelled"


async def test_an_inline_transaction_waits_its_turn_behind_a_write_the_writer_already_took(store):
    writer = store._backend.write_queue
    writer._queue = gated = GatedQueue()
    await store.apply(lambda repo: repo.add_user("ada@example.com", "hash"))
    order: list[str] = []
    gated.taken.clear()
    gated.gate.clear()

    def first(repo):
        order.append("first")

    def second(repo):
        order.append("second")
        return threading.current_thread()

    earlier = asyncio.create_task(store.apply(first))
    await asyncio.to_thread(gated.taken.wait, 10)  # the writer holds `first`, outside the connection's lock
    later = asyncio.create_task(store.apply(second, inline=True))
    await asyncio.sleep(0)  # the task's first step: an inline run would have finished in it
    assert order == [] and not later.done()  # it did not jump the queue
    gated.gate.set()
    await earlier
    ran_on = await later

    assert order == ["first", "second"]
    assert ran_on is not threading.current_thread()  # it went through the writer thread
    assert writer.inline_commits == 0


async def test_an_inline_transaction_that_fails_leaves_nothing_and_publishes_nothing(store):
    await store.apply(lambda repo: repo.add_user("ada@example.com", "hash"))
    store.published.clear()

    def duplicate(repo):
        repo.add_user("bob@example.com", "hash")
        raise EmailTaken()

    with pytest.raises(EmailTaken):
        await store.apply(duplicate, inline=True)

    assert store._backend.write_queue.inline_commits == 0
    emails = await store.query(lambda repo: sorted(r.email for r in repo.conn.exec_driver_sql(
        "SELECT email FROM users").all()))
    assert emails == ["ada@example.com"]
    assert store.published == []
