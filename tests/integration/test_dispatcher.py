"""The scaled-out engine's dispatcher hands every queued job to the broker, in the order the jobs were queued."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
import redis

from exportd.domain.events import EventRecord
from exportd.domain.jobs import EventType
from exportd.engine.celery_app import RUN_EXPORT, CeleryDispatcher, create_celery
from exportd.testing import test_settings

BROKER = "redis://127.0.0.1:6379/14"


@pytest.fixture
def broker_queue(backend):
    if backend != "sqlite":
        pytest.skip("the dispatcher does not use the store: once is enough")
    client = redis.Redis.from_url(BROKER)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    name = f"exportd-test-{uuid.uuid4().hex[:8]}"
    try:
        yield client, name
    finally:
        client.delete(name)
        client.close()


def queued(job_id: str, seq: int = 1) -> EventRecord:
    return EventRecord(job_id=job_id, seq=seq, type=EventType.QUEUED, payload={}, rooms=("u",))


def task_of(message: bytes) -> tuple[str, list]:
    """(task name, args) of a Celery message as the Redis transport stores it."""
    envelope = json.loads(message)
    args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
    return envelope["headers"]["task"], args


async def test_every_queued_job_reaches_the_broker_once_in_the_order_it_was_queued(tmp_path, broker_queue):
    client, name = broker_queue
    settings = test_settings(tmp_path / "data", broker_url=BROKER, celery_queue=name)
    dispatcher = CeleryDispatcher(create_celery(settings), settings)
    await dispatcher.start()
    job_ids = [f"job-{number}" for number in range(60)]
    try:
        for start in range(0, len(job_ids), 7):  # committed transactions of several events each
            dispatcher.on_events([queued(job_id) for job_id in job_ids[start:start + 7]]
                                 + [EventRecord(job_id="other", seq=2, type=EventType.STARTED, payload={}, rooms=())])
        received = []
        for _ in job_ids:  # the consumer's end of the list (Celery's workers pop from the right)
            popped = client.brpop([name], timeout=30)
            assert popped is not None, f"only {len(received)} of {len(job_ids)} messages arrived"
            received.append(task_of(popped[1]))
    finally:
        await dispatcher.stop()

    assert received == [(RUN_EXPORT, [job_id]) for job_id in job_ids]
    assert client.llen(name) == 0  # each once: no event but export:queued sends anything
    assert dispatcher.sent == len(job_ids) and dispatcher.failed == 0


async def test_a_dispatcher_stopped_and_started_again_still_sends(tmp_path, broker_queue):
    client, name = broker_queue
    settings = test_settings(tmp_path / "data", broker_url=BROKER, celery_queue=name)
    dispatcher = CeleryDispatcher(create_celery(settings), settings)
    await dispatcher.start()
    await dispatcher.stop()
    dispatcher.submit("after-a-restart")
    try:
        popped = client.brpop([name], timeout=30)
    finally:
        await dispatcher.stop()
    assert popped is not None and task_of(popped[1]) == (RUN_EXPORT, ["after-a-restart"])
