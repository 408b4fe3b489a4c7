"""Typed payloads of the six export events (DESIGN §2), and their JSON Schema.

The store writes each event as the JSON of one of these models; sockets emit
exactly the stored JSON, so what a client receives equals the stored log.

A few fields exist for clients of the platform exportd replaced, which read
them under these names: `phase` and `stageProgress.currentItem` on progress,
`message` on cancelled. They are kept beside exportd's own fields, never
instead of them, and described as such in the schema.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator
from pydantic.alias_generators import to_camel

from exportd.domain.jobs import CancelReason, EventType, JobStatus

Stage = Literal["images", "visualizations", "annotations", "metrics", "documentation", "compression"]


class _Payload(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


class EventBase(_Payload):
    job_id: str
    project_id: str
    user_id: str
    seq: int = Field(ge=1)
    status: JobStatus
    timestamp: str  #: ISO 8601, UTC


class Queued(EventBase):
    type: Literal["export:queued"] = "export:queued"
    queued_at: str
    position: int = Field(ge=0)  #: jobs ahead of this one
    attempt: int = Field(0, ge=0)  #: attempts made so far (0 for a new job)


class Started(EventBase):
    type: Literal["export:started"] = "export:started"
    started_at: str
    estimated_duration: float | None
    attempt: int = Field(ge=1)


Phase = Literal["processing", "downloading"]
DOWNLOADING_FROM = 90  #: the replaced platform's `phase` turned to "downloading" at this percentage

CANCEL_MESSAGES = {
    CancelReason.USER_CANCELLED: "Export cancelled by user",
    CancelReason.TIMEOUT: "Export cancelled: it ran past its time limit",
    CancelReason.SYSTEM_CANCELLED: "Export cancelled by the system (project deleted, access revoked or operator)",
}


def phase_of(progress: float) -> Phase:
    """The replaced platform's coarse phase: "processing", then "downloading" from 90 %."""
    return "processing" if progress < DOWNLOADING_FROM else "downloading"


class StageProgress(_Payload):
    current: int = Field(ge=0)
    total: int = Field(ge=0)
    current_item: str | None = Field(
        None, description="The item (usually an image's file name) the stage just finished; "
                          "kept for clients of the replaced platform.")


class Progress(EventBase):
    type: Literal["export:progress"] = "export:progress"
    progress: float = Field(ge=0, le=100)
    stage: Stage
    stage_progress: StageProgress
    message: str
    eta_seconds: float | None
    phase: Phase = Field(description='"processing" below 90 %, then "downloading"; '
                                     "kept for clients of the replaced platform (prefer `stage`).")

    @model_validator(mode="before")
    @classmethod
    def _phase_of_older_events(cls, data: Any) -> Any:
        """Events stored before `phase` existed read back with the phase their progress implies."""
        if isinstance(data, dict) and "phase" not in data and isinstance(data.get("progress"), int | float):
            data = {**data, "phase": phase_of(data["progress"])}
        return data


class Completed(EventBase):
    type: Literal["export:completed"] = "export:completed"
    completed_at: str
    processing_time: float
    export_size: int
    file_name: str
    download_url: str
    warnings: list[str]


class Failed(EventBase):
    type: Literal["export:failed"] = "export:failed"
    failed_at: str
    error: str
    code: str
    retryable: bool


class Cancelled(EventBase):
    type: Literal["export:cancelled"] = "export:cancelled"
    cancelled_at: str
    reason: CancelReason
    cancelled_by: str | None  #: user id, or None when the system cancelled
    previous_status: JobStatus
    progress: float
    message: str = Field(description="A sentence for people, by reason; kept for clients of the replaced platform.")

    @model_validator(mode="before")
    @classmethod
    def _message_of_older_events(cls, data: Any) -> Any:
        """Events stored before `message` existed read back with their reason's sentence."""
        if isinstance(data, dict) and "message" not in data and data.get("reason") in CANCEL_MESSAGES:
            data = {**data, "message": CANCEL_MESSAGES[CancelReason(data["reason"])]}
        return data


EVENT_MODELS: dict[EventType, type[EventBase]] = {
    EventType.QUEUED: Queued,
    EventType.STARTED: Started,
    EventType.PROGRESS: Progress,
    EventType.COMPLETED: Completed,
    EventType.FAILED: Failed,
    EventType.CANCELLED: Cancelled,
}

AnyEvent = Queued | Started | Progress | Completed | Failed | Cancelled
_ANY_EVENT = TypeAdapter(AnyEvent)


def parse_event(data: dict[str, Any]) -> EventBase:
    """Parse a stored or received payload into its typed model (by its `type`)."""
    return _ANY_EVENT.validate_python(data)


def events_json_schema() -> dict[str, Any]:
    """One JSON Schema document naming every event and its payload."""
    schemas = {event.value: model.model_json_schema(by_alias=True) for event, model in EVENT_MODELS.items()}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "exportd Socket.IO events",
        "description": "Server-to-client events; every payload carries jobId, projectId, userId, seq, status and timestamp.",
        "events": schemas,
    }


def rooms_for(payload: dict[str, Any]) -> tuple[str, ...]:
    """The users told of an event: the job's owner, and who cancelled it if someone else."""
    owner, canceller = payload["userId"], payload.get("cancelledBy")
    return (owner,) if canceller in (None, owner) else (owner, canceller)


class EventRecord(BaseModel):
    """One committed event: what the store wrote and what sockets emit."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    seq: int
    type: EventType
    payload: dict[str, Any]
    rooms: tuple[str, ...]  #: the users to tell: the owner, and a canceller who is not the owner

    @property
    def is_terminal(self) -> bool:
        return self.type.is_terminal
