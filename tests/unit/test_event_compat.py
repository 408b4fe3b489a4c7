"""The fields clients of the replaced platform read: in the models, the published schema, and older stored events."""

from __future__ import annotations

import pytest

from exportd.domain.events import CANCEL_MESSAGES, Cancelled, Progress, events_json_schema, parse_event, phase_of
from exportd.domain.jobs import CancelReason

BASE = {"jobId": "j", "projectId": "p", "userId": "u", "seq": 4, "timestamp": "2026-01-01T00:00:00Z"}


def resolve(schema: dict, node: dict) -> dict:
    """Follow a local `$ref` of one event's schema."""
    ref = node.get("$ref")
    return schema["$defs"][ref.rsplit("/", 1)[1]] if ref else node


def test_the_event_schema_documents_phase_current_item_and_the_cancel_message():
    events = events_json_schema()["events"]
    progress, cancelled = events["export:progress"], events["export:cancelled"]
    assert "phase" in progress["required"]
    assert progress["properties"]["phase"]["enum"] == ["processing", "downloading"]
    assert "replaced platform" in progress["properties"]["phase"]["description"]
    stage_progress = resolve(progress, progress["properties"]["stageProgress"])
    assert {"current", "total", "currentItem"} <= set(stage_progress["properties"])
    assert "replaced platform" in stage_progress["properties"]["currentItem"]["description"]
    assert "message" in cancelled["required"] and "replaced platform" in cancelled["properties"]["message"]["description"]
    # exportd's own fields are all still there
    assert {"progress", "stage", "stageProgress", "message", "etaSeconds"} <= set(progress["required"])
    assert {"cancelledAt", "reason", "cancelledBy", "previousStatus", "progress"} <= set(cancelled["required"])


@pytest.mark.parametrize(("progress", "phase"), [(0, "processing"), (89.99, "processing"), (90, "downloading"),
                                                  (100, "downloading")])
def test_the_phase_turns_to_downloading_at_90_percent_as_the_replaced_platform_did(progress, phase):
    assert phase_of(progress) == phase


def test_every_cancel_reason_has_a_message():
    assert set(CANCEL_MESSAGES) == set(CancelReason)


def test_events_stored_before_the_old_client_fields_existed_read_back_with_them():
    old_progress = {**BASE, "type": "export:progress", "status": "processing", "progress": 95.0,
                    "stage": "compression", "stageProgress": {"current": 1, "total": 1}, "message": "",
                    "etaSeconds": None}
    old_cancel = {**BASE, "type": "export:cancelled", "status": "cancelled", "cancelledAt": BASE["timestamp"],
                  "reason": "timeout", "cancelledBy": None, "previousStatus": "processing", "progress": 10.0}
    progress, cancelled = parse_event(old_progress), parse_event(old_cancel)
    assert isinstance(progress, Progress) and progress.phase == "downloading"
    assert progress.stage_progress.current_item is None
    assert isinstance(cancelled, Cancelled) and cancelled.message == CANCEL_MESSAGES[CancelReason.TIMEOUT]
