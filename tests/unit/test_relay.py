"""The relay emits each job's committed events once, in seq order, whatever order they are published in."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

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
        return [r.payload for r in sorted(self.records, key=lambda r: r.seq) if r.job_id == job_id and r.seq > after]


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


@given(st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=3).flatmap(
    lambda lengths: st.permutations([(f"job{j}", seq) for j, n in enumerate(lengths) for seq in range(1, n + 1)])))
@settings(max_examples=200, deadline=None)
def test_whatever_order_commits_are_published_in_each_job_is_emitted_once_in_seq_order(order):
    """Publishing may reorder across actors; the first event of a job is always seq 1 here (no restart)."""
    import asyncio

    records = {key: record(*key) for key in order}
    log = FakeLog(*records.values())
    sink = RecordingSink()
    relay = EventRelay(sink, log)

    async def publish_all():
        for key in order:
            await relay.publish([records[key]])

    first_seen = {}
    for job_id, seq in order:
        first_seen.setdefault(job_id, seq)
    asyncio.run(publish_all())
    for job_id in {job_id for job_id, _ in order}:
        emitted = [p["seq"] for p in sink.by_job[job_id]]
        start = first_seen[job_id]
        # a job first heard of at seq k (a restart, in real life) starts there; from then on: no gap, no repeat
        assert emitted == list(range(start, max(s for j, s in order if j == job_id) + 1))


async def test_a_relay_of_a_cluster_node_that_first_hears_of_a_job_at_seq_k_emits_1_to_k_minus_1_first():
    one, two, three = record("j", 1, EventType.QUEUED), record("j", 2, EventType.STARTED), record("j", 3)
    sink, log = RecordingSink(), FakeLog(one, two, three)
    relay = EventRelay(sink, log, fill_from_start=True)

    await relay.publish([three])
    await relay.publish([two, one])  # late notifications of what was already filled

    assert [p["seq"] for p in sink.by_job["j"]] == [1, 2, 3]


async def test_catching_up_emits_only_what_this_relay_has_not_emitted_yet():
    events = [record("j", seq) for seq in (1, 2, 3, 4)]
    sink = RecordingSink()
    relay = EventRelay(sink, FakeLog(*events), fill_from_start=True)
    await relay.publish(events[:2])

    await relay.catch_up("j", [e.payload for e in events])

    assert [p["seq"] for p in sink.by_job["j"]] == [1, 2, 3, 4]
    assert relay.last_emitted("j") == 4
