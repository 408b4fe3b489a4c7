"""The domain core: options, event payloads, the state machine table, the error tree."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from exportd.domain import errors
from exportd.domain.events import EVENT_MODELS, events_json_schema, parse_event
from exportd.domain.jobs import ACTIVE, TERMINAL, TRANSITIONS, EventType, JobStatus
from exportd.domain.options import DIALOG_CONTROLS, ExportOptions, VisualizationOptions


def test_unknown_option_fields_are_rejected_by_name():
    with pytest.raises(ValidationError) as raised:
        ExportOptions.model_validate({"includeOriginalImages": True, "includeEverything": True})
    assert raised.value.errors()[0]["loc"] == ("includeEverything",)


@pytest.mark.parametrize("scale", [0, 0.0009, 1000.5, -1])
def test_a_scale_outside_its_range_is_rejected(scale):
    with pytest.raises(ValidationError):
        ExportOptions.model_validate({"pixelToMicrometerScale": scale})


def test_ill_typed_options_are_not_coerced():
    for bad in ({"includeOriginalImages": "yes"}, {"annotationFormats": "coco"},
                {"visualizationOptions": {"strokeWidth": "2"}}, {"selectedImageIds": [1]}):
        with pytest.raises(ValidationError):
            ExportOptions.model_validate(bad)


def test_options_round_trip_through_their_camel_case_json():
    options = ExportOptions.model_validate({"annotationFormats": ["json", "coco", "json"],
                                            "pixelToMicrometerScale": 0.65})
    assert options.annotation_formats == ["json", "coco"]
    assert ExportOptions.model_validate(options.to_json()) == options


def test_overlays_default_to_the_replaced_platforms_look():
    style = ExportOptions().visualization_options
    assert style.polygon_colors.external.lower() == "#ff0000" and style.polygon_colors.internal.lower() == "#0000ff"
    assert (style.stroke_width, style.font_size, style.transparency, style.show_numbers) == (2, 32, 0.3, True)


def test_the_dialog_sliders_hold_the_defaults_and_stay_inside_what_the_api_accepts():
    style = VisualizationOptions()
    for name, field in (("strokeWidth", "stroke_width"), ("fontSize", "font_size"), ("transparency", "transparency")):
        control = DIALOG_CONTROLS[name]
        VisualizationOptions.model_validate({name: control["min"]})  # both ends are valid options
        VisualizationOptions.model_validate({name: control["max"]})
        default = getattr(style, field)
        assert control["min"] <= default <= control["max"]
        steps = (default - control["min"]) / control["step"]
        assert abs(steps - round(steps)) < 1e-9, f"{name}: the default is not on a slider step"


def test_no_transition_leaves_a_terminal_state():
    for transition in TRANSITIONS:
        assert not transition.sources & TERMINAL, transition.name
    assert ACTIVE | TERMINAL == set(JobStatus)


def test_every_worker_statement_is_fenced_and_api_statements_are_not():
    fenced = {t.name for t in TRANSITIONS if t.fenced}
    assert fenced == {"progress", "complete", "fail", "requeue"}


def test_the_event_schema_names_all_six_events_and_their_common_fields():
    schema = events_json_schema()
    assert set(schema["events"]) == {e.value for e in EventType}
    for event in schema["events"].values():
        assert {"jobId", "projectId", "userId", "seq", "status", "timestamp"} <= set(event["required"])


def test_a_stored_payload_parses_back_into_its_model():
    payload = {"type": "export:cancelled", "jobId": "j", "projectId": "p", "userId": "u", "seq": 3,
               "status": "cancelled", "timestamp": "2026-01-01T00:00:00Z", "cancelledAt": "2026-01-01T00:00:00Z",
               "reason": "user_cancelled", "cancelledBy": "u", "previousStatus": "processing", "progress": 40.0,
               "message": "Export cancelled by user"}
    event = parse_event(payload)
    assert isinstance(event, EVENT_MODELS[EventType.CANCELLED])
    assert event.to_json() == payload


def test_an_error_without_a_message_speaks_its_docstring():
    assert errors.ExportNotCancellable().message == "Only pending or processing exports can be cancelled."
    assert errors.TooManyActiveExports(retry_after=7).retry_after == 7
    names = errors.error_classes()
    assert names["JobNotFound"].code == "NOT_FOUND" and names["ExportGone"].code == "GONE"
