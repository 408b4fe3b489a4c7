"""The errors the SDK raises: the server's domain errors, by name, plus what only a client meets.

    ExportdError                       (exportd.domain.errors)
    ├── BadRequest                     400  (InvalidOptions when the field is an option)
    ├── Unauthorized                   401  (also: not logged in)
    ├── Forbidden                      403
    ├── NotFound                       404  (JobNotFound on a job's routes)
    ├── Conflict                       409
    │   ├── ExportNotReady             download of a job that is not completed
    │   ├── ExportStillActive          discard of a running job
    │   └── ExportNotCancellable       cancel of a finished job
    │       └── FinishedBeforeCancel   … that had completed: download it or discard it
    ├── Gone                           410
    │   └── ExportGone                 download of a cancelled, expired or discarded export
    ├── TooManyActiveExports           429, alias RateLimited, with `retry_after`
    ├── ServiceUnavailable             503: storage or database full or unreachable, with `retry_after`
    └── ClientError                    no usable answer from the server
        ├── ServerError                5xx, or an answer that is not the contract's
        ├── ConnectionFailed           the server could not be reached
        └── IncompleteDownload         the ZIP arrived short (nothing was written)

Every error raised from a response carries `status_code` and `body` (the JSON
the server sent), and the `code` from the contract.
"""

from __future__ import annotations

from typing import Any

from exportd.domain.errors import (
    BadRequest,
    Conflict,
    ExportdError,
    ExportGone,
    ExportNotCancellable,
    ExportNotReady,
    ExportStillActive,
    Forbidden,
    Gone,
    InvalidOptions,
    JobNotFound,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    TooManyActiveExports,
    Unauthorized,
)

RateLimited = TooManyActiveExports


class FinishedBeforeCancel(ExportNotCancellable):
    """The export finished before it could be cancelled."""

    @property
    def job(self) -> Any:
        return self.details.get("job")


class ClientError(ExportdError):
    """The server gave no usable answer."""


class ServerError(ClientError):
    """The server failed to answer the request."""


class ConnectionFailed(ClientError):
    """The server could not be reached."""


class IncompleteDownload(ClientError):
    """The download ended before the whole file arrived; nothing was written."""


BY_CODE: dict[str, type[ExportdError]] = {
    "BAD_REQUEST": BadRequest,
    "UNAUTHORIZED": Unauthorized,
    "FORBIDDEN": Forbidden,
    "NOT_FOUND": NotFound,
    "CONFLICT": Conflict,
    "GONE": Gone,
    "PAYLOAD_TOO_LARGE": PayloadTooLarge,
    "RATE_LIMIT_EXCEEDED": TooManyActiveExports,
    "SERVICE_UNAVAILABLE": ServiceUnavailable,
    "INTERNAL_ERROR": ServerError,
}

CODE_BY_STATUS = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND", 409: "CONFLICT",
                  410: "GONE", 413: "PAYLOAD_TOO_LARGE", 422: "BAD_REQUEST", 429: "RATE_LIMIT_EXCEEDED",
                  503: "SERVICE_UNAVAILABLE"}


def error_from(status_code: int, body: Any, *, retry_after: str | None = None,
               refine: dict[str, type[ExportdError]] | None = None) -> ExportdError:
    """The exception for an error answer: by the body's `code`, refined by what the call was about.

    `refine` maps a code to a more precise class for this call (e.g. GONE → ExportGone on a download).
    """
    body = body if isinstance(body, dict) else {}
    code = body.get("code") if isinstance(body.get("code"), str) else None
    code = code or CODE_BY_STATUS.get(status_code, "INTERNAL_ERROR" if status_code >= 500 else "BAD_REQUEST")
    message = body.get("error") if isinstance(body.get("error"), str) else None
    details = {key: value for key, value in body.items() if key not in ("success", "error", "code")}

    cls = (refine or {}).get(code) or BY_CODE.get(code, ServerError if status_code >= 500 else ClientError)
    if status_code == 413:
        cls = PayloadTooLarge
    if cls is BadRequest and str(details.get("field", "")).startswith("options"):
        cls = InvalidOptions
    if cls in (TooManyActiveExports, ServiceUnavailable):
        details.pop("retryAfter", None)
        error: ExportdError = cls(message, retry_after=_seconds(retry_after, body), **details)
    else:
        error = cls(message or f"The server answered {status_code}.", **details)
    error.code = code
    error.status_code = status_code
    error.body = body
    return error


def _seconds(header: str | None, body: dict) -> int:
    for value in (header, body.get("retryAfter")):
        try:
            if value is not None:
                return max(0, int(float(value)))
        except (TypeError, ValueError):
            continue
    return 5


__all__ = [
    "BadRequest", "ClientError", "Conflict", "ConnectionFailed", "ExportGone", "ExportNotCancellable",
    "ExportNotReady", "ExportStillActive", "ExportdError", "FinishedBeforeCancel", "Forbidden", "Gone",
    "IncompleteDownload", "InvalidOptions", "JobNotFound", "NotFound", "PayloadTooLarge", "RateLimited",
    "ServerError", "ServiceUnavailable", "TooManyActiveExports", "Unauthorized", "error_from",
]
