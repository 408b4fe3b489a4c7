"""The relay emits each job's committed events once, in seq order, whatever order they are published in."""

from __future__ import annotations

from exportd.domain.events import EventRecord
from exportd.domain.jobs import EventType
from exportd.realtime.emitter import EventRelay, rooms_for
from exportd.testing import RecordingSink


def record(job_id: str, seq: int, type_: EventType = EventType.PROGRESS, **extra) -> EventRecord:
    payload = {"jobId": job_id, "userId": "u1", "seq": seq, "type": type_.value, **extra}
    return EventRecord(job_id=job_id, seq=seq, type=type_, payload=payload, rooms=rooms_for(payload))


class FakeLog:
    """The store's event log, as the relay reads it to fill gaps."""

    def __init__(self, *records: EventRecord) -> None:
        self.records = list(records)
        self.reads = 0

    async def __call__(self, job_id: str, after: int) -> list[dict]:
        self.reads += 1
        return [r.payload for r in self.records if r.job_id == job_id and r.seq > after]


async def test_an_event_published_ahead_of_its_predecessor_waits_for_it_from_the_store():
    one, two, three = record("j", 1, EventType.QUEUED), record("j", 2), record("j", 3, EventType.CANCELLED)
    sink, log = RecordingSink(), FakeLog(one, two, three)
    relay = EventRelay(sink, log)

    await relay.publish([one])
    await relay.publish([three])  # the canceller published first
    await relay.publish([two])  # the worker's progress, late

    assert [p["seq"] for p in sink.by_job["j"]] == [1, 2, 3]
    assert log.reads == 1


async def test_duplicates_and_older_events_are_dropped():
    sink = RecordingSink()
    relay = EventRelay(sink, FakeLog())
    await relay.publish([record("j", 1), record("j", 2), record("j", 2), record("j", 1), record("j", 3)])
    assert [p["seq"] for p in sink.by_job["j"]] == [1, 2, 3]


async def test_jobs_are_ordered_independently():
    sink = RecordingSink()
    relay = EventRelay(sink, FakeLog())
    await relay.publish([record("a", 1), record("b", 1), record("a", 2), record("b", 2)])
    assert [p["seq"] for p in sink.by_job["a"]] == [1, 2]
    assert [p["seq"] for p in sink.by_job["b"]] == [1, 2]


def test_a_cancel_by_someone_else_reaches_both_rooms():
    assert rooms_for({"userId": "owner", "cancelledBy": "admin"}) == ("owner", "admin")
    assert rooms_for({"userId": "owner", "cancelledBy": "owner"}) == ("owner",)
    assert rooms_for({"userId": "owner", "cancelledBy": None}) == ("owner",)
