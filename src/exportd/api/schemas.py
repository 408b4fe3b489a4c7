"""The shapes of what the HTTP API answers, for the OpenAPI document.

The routes build their answers with ``exportd.views`` (shared with the socket
acks); these models describe those answers and are checked against the real
ones by the schemathesis test. Each allows fields it does not name, so a field
added to a view is described late rather than refused.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from exportd.domain.jobs import CancelReason, JobStatus

Timestamp = str  #: ISO 8601 in UTC with a ``Z``


class _Shape(BaseModel):
    model_config = ConfigDict(extra="allow")


ErrorCode = Literal["BAD_REQUEST", "UNAUTHORIZED", "FORBIDDEN", "NOT_FOUND", "CONFLICT", "GONE",
                    "PAYLOAD_TOO_LARGE", "RATE_LIMIT_EXCEEDED", "SERVICE_UNAVAILABLE", "INTERNAL_ERROR"]


class User(_Shape):
    id: str
    email: str
    createdAt: Timestamp | None = None


class Project(_Shape):
    id: str
    name: str
    ownerId: str
    role: Literal["owner", "shared"]
    createdAt: Timestamp
    imageCount: int | None = None


class Image(_Shape):
    id: str
    name: str
    width: int
    height: int
    contentType: str
    size: int
    polygonCount: int
    createdAt: Timestamp


class Job(_Shape):
    """An export job as it stands (DESIGN §3)."""

    id: str
    projectId: str
    userId: str
    status: JobStatus
    progress: float
    stage: str | None
    message: str | None
    seq: int
    attempt: int
    createdAt: Timestamp
    startedAt: Timestamp | None
    completedAt: Timestamp | None
    failedAt: Timestamp | None
    cancelledAt: Timestamp | None
    reason: CancelReason | None
    cancelledBy: str | None
    error: str | None
    errorCode: str | None
    retryable: bool | None
    options: dict[str, Any]
    projectName: str
    warnings: list[str]
    exportSize: int | None
    fileName: str | None
    available: bool = Field(description="completed and its file still kept")
    downloadUrl: str | None


class ErrorBody(_Shape):
    """Every error: ``{success: false, error, code}``, plus what the error adds."""

    success: Literal[False]
    error: str = Field(description="A human sentence; never a server path or raw exception text")
    code: ErrorCode
    field: str | None = Field(None, description="The input at fault (400)")
    retryAfter: int | None = Field(None, description="Seconds to wait (429, 503), as in Retry-After")
    job: Job | None = Field(None, description="The job as it stands (409 on cancel, download, discard)")


class Success(_Shape):
    success: Literal[True]


class UserAnswer(Success):
    user: User


class LoginAnswer(Success):
    token: str
    expiresAt: Timestamp
    user: User


class SessionAnswer(Success):
    user: User | None


class ProjectList(_Shape):
    projects: list[Project]


class ProjectDetail(Project):
    images: list[Image]
    imageCount: int


class SkippedImage(_Shape):
    file: str
    imageId: str
    reason: str


class UploadAnswer(_Shape):
    images: list[Image]
    skipped: list[SkippedImage]
    cells: int
    warnings: list[str]


class SegmentationAnswer(Success):
    imageId: str
    polygonCount: int


class ShareList(_Shape):
    shares: list[User]


class StartAnswer(Job):
    jobId: str
    success: Literal[True]


class JobList(_Shape):
    jobs: list[Job]


class EventLog(_Shape):
    jobId: str
    status: JobStatus
    seq: int
    events: list[dict[str, Any]] = Field(description="Stored events after `after`, in seq order; "
                                                     "each as described by /api/export/events/schema")


class CancelAnswer(Success):
    status: JobStatus
    jobId: str
    cancelledAt: Timestamp | None
    reason: CancelReason | None
    previousStatus: JobStatus | None
    job: Job


class DownloadToken(_Shape):
    token: str
    expiresAt: Timestamp
    url: str


class Format(_Shape):
    name: str
    group: str
    title: str
    path: str


class Formats(_Shape):
    annotations: list[Format]
    metrics: list[Format]
    features: list[str]


class Defaults(_Shape):
    options: dict[str, Any]
    controls: dict[str, dict[str, float]]


class Health(_Shape):
    status: Literal["ok"]


class Ready(_Shape):
    status: Literal["ready"]
    engine: str
    checks: dict[str, str]


class NotReady(ErrorBody):
    status: Literal["unavailable"]
    checks: dict[str, str]


class EventSchema(_Shape):
    """A JSON Schema document naming every Socket.IO event and its payload."""

    events: dict[str, dict[str, Any]]
