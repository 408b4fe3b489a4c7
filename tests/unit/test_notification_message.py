"""The message a progress event is announced with: the trigger's, and without its payload when too large."""

from __future__ import annotations

import json

from exportd.domain.events import EventRecord
from exportd.domain.jobs import EventType
from exportd.store.announcing import _literal
from exportd.store.notifications import MAX_MESSAGE, notification


def _record(message: str) -> EventRecord:
    payload = {"jobId": "j1", "seq": 7, "type": "export:progress", "message": message}
    return EventRecord(job_id="j1", seq=7, type=EventType.PROGRESS, payload=payload, rooms=("u1",))


def test_the_message_carries_what_the_trigger_sends():
    record = _record("image 3: O'Brien's \\ \"žluťoučký\"")
    assert json.loads(notification(record)) == {"jobId": "j1", "seq": 7, "type": "export:progress",
                                                 "payload": record.payload}


def test_a_message_over_notifys_limit_goes_without_its_payload_and_stays_under_it():
    small = notification(_record("x" * (MAX_MESSAGE - 200)))
    large = notification(_record("x" * MAX_MESSAGE))
    assert "payload" in json.loads(small) and len(small) <= MAX_MESSAGE
    assert json.loads(large) == {"jobId": "j1", "seq": 7, "type": "export:progress"}
    assert len(large.encode()) == len(large)  # ASCII: its length is its size in bytes


def test_a_literal_escapes_quotes_and_backslashes_for_an_e_string():
    assert _literal("""a'b\\c"d""") == """E'a''b\\\\c"d'"""
