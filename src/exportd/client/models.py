"""The job and project views the server sends, as typed models (snake_case here, camelCase on the wire).

Fields the server adds later are ignored, so an older SDK keeps working.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from exportd.domain.jobs import JobStatus


class _View(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)


class Job(_View):
    """An export job as ``GET …/status`` shows it."""

    id: str
    project_id: str
    user_id: str
    status: JobStatus
    progress: float = 0
    stage: str | None = None
    message: str | None = None
    seq: int = 0
    attempt: int = 0
    created_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    failed_at: str | None = None
    cancelled_at: str | None = None
    reason: str | None = None
    cancelled_by: str | None = None
    error: str | None = None
    error_code: str | None = None
    retryable: bool | None = None
    options: dict[str, Any] | None = None
    project_name: str | None = None
    warnings: list[str] = []
    export_size: int | None = None
    file_name: str | None = None
    available: bool = False
    download_url: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal


class CancelResult(_View):
    """The server's answer to a cancel that took effect (or had already: the same `cancelled_at` again)."""

    status: JobStatus
    job_id: str
    cancelled_at: str | None = None
    reason: str | None = None
    previous_status: JobStatus | None = None
    job: Job


class Project(_View):
    id: str
    name: str
    owner_id: str
    role: str
    created_at: str | None = None
    image_count: int | None = None


class User(_View):
    id: str
    email: str
    created_at: str | None = None
