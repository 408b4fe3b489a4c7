"""The Python SDK of exportd: `ExportdClient`, its errors by name, and the per-job client state.

    from exportd.client import ExportdClient, FinishedBeforeCancel, ExportGone
"""

from exportd.client.errors import (
    BadRequest,
    ClientError,
    Conflict,
    ConnectionFailed,
    ExportdError,
    ExportGone,
    ExportNotCancellable,
    ExportNotReady,
    ExportStillActive,
    FinishedBeforeCancel,
    Forbidden,
    Gone,
    IncompleteDownload,
    InvalidOptions,
    JobNotFound,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    TooManyActiveExports,
    Unauthorized,
)
from exportd.client.importer import ImportSummary
from exportd.client.models import CancelResult, Job, Project, User
from exportd.client.sdk import ExportdClient
from exportd.client.state import CancelOutcome, Ignored, JobState, Receipt, Snapshot

__all__ = [
    "BadRequest", "CancelOutcome", "CancelResult", "ClientError", "Conflict", "ConnectionFailed",
    "ExportGone", "ExportNotCancellable", "ExportNotReady", "ExportStillActive", "ExportdClient", "ExportdError",
    "FinishedBeforeCancel", "Forbidden", "Gone", "Ignored", "ImportSummary", "IncompleteDownload", "InvalidOptions", "Job",
    "JobNotFound", "JobState", "NotFound", "PayloadTooLarge", "Project", "RateLimited", "Receipt", "ServerError",
    "Snapshot", "TooManyActiveExports", "Unauthorized", "User",
]
