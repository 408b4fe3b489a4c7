"""Domain errors. The docstring of each is its default message.

    ExportdError
    ├── BadRequest            invalid input the client can fix
    │   ├── InvalidOptions
    │   ├── UnknownImages
    │   └── PayloadTooLarge   (code PAYLOAD_TOO_LARGE)
    ├── Unauthorized          no, forged or expired credentials
    │   └── InvalidCredentials
    ├── Forbidden             visible, but not yours to change
    ├── NotFound              absent, or not visible to the caller
    │   ├── UserNotFound
    │   ├── ProjectNotFound
    │   ├── ImageNotFound
    │   └── JobNotFound
    ├── Conflict              the resource is in the wrong state
    │   ├── EmailTaken
    │   ├── ExportNotCancellable
    │   ├── ExportNotReady
    │   ├── ExportStillActive
    │   └── IdempotencyKeyReused
    ├── Gone                  it existed, and is no more
    │   └── ExportGone
    ├── TooManyActiveExports  the per-user limit is reached
    └── ServiceUnavailable    exportd cannot write now; the request may be retried later
        ├── StorageUnavailable  the disk is full or read-only
        ├── StoreUnavailable    the database is full, read-only or unreachable
        └── TracingUnavailable  a process tracing label images stopped

Each error carries a ``code`` from the contract; ``api/errors.py`` maps codes to
HTTP statuses and the SDK maps them back to these classes.
"""

from __future__ import annotations

from typing import Any


class ExportdError(Exception):
    """Something went wrong in exportd."""

    code = "INTERNAL_ERROR"

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or (self.__doc__ or "").strip()
        self.details = details
        super().__init__(self.message)


class BadRequest(ExportdError):
    """The request is not valid."""

    code = "BAD_REQUEST"


class InvalidOptions(BadRequest):
    """The export options are not valid."""


class UnknownImages(BadRequest):
    """Some selected images are not part of the project."""


class PayloadTooLarge(BadRequest):
    """The request body is too large."""

    code = "PAYLOAD_TOO_LARGE"


class Unauthorized(ExportdError):
    """Authentication is required."""

    code = "UNAUTHORIZED"


class InvalidCredentials(Unauthorized):
    """The email or password is wrong."""


class Forbidden(ExportdError):
    """You may not change this resource."""

    code = "FORBIDDEN"


class NotFound(ExportdError):
    """Not found."""

    code = "NOT_FOUND"


class UserNotFound(NotFound):
    """User not found."""


class ProjectNotFound(NotFound):
    """Project not found."""


class ImageNotFound(NotFound):
    """Image not found."""


class JobNotFound(NotFound):
    """Export job not found."""


class Conflict(ExportdError):
    """The resource is in a state that does not allow this."""

    code = "CONFLICT"


class EmailTaken(Conflict):
    """An account with this email already exists."""


class ExportNotCancellable(Conflict):
    """Only pending or processing exports can be cancelled."""


class ExportNotReady(Conflict):
    """The export is not completed, so there is nothing to download."""


class ExportStillActive(Conflict):
    """The export is still running; cancel it before discarding it."""


class IdempotencyKeyReused(Conflict):
    """This Idempotency-Key was already used for a different request."""


class Gone(ExportdError):
    """The resource is no longer available."""

    code = "GONE"


class ExportGone(Gone):
    """The export is no longer available."""


class TooManyActiveExports(ExportdError):
    """You already have the maximum number of active exports."""

    code = "RATE_LIMIT_EXCEEDED"

    def __init__(self, message: str | None = None, *, retry_after: int = 5, **details: Any) -> None:
        super().__init__(message, retryAfter=retry_after, **details)  # body fields are camelCase
        self.retry_after = retry_after


class ServiceUnavailable(ExportdError):
    """The service cannot take this request now; try again later."""

    code = "SERVICE_UNAVAILABLE"

    def __init__(self, message: str | None = None, *, retry_after: int = 30, **details: Any) -> None:
        super().__init__(message, retryAfter=retry_after, **details)
        self.retry_after = retry_after


class StorageUnavailable(ServiceUnavailable):
    """Storage is full or read-only; nothing was saved. Try again later."""


class StoreUnavailable(ServiceUnavailable):
    """The database is full or unavailable; nothing was saved. Try again later."""


class TracingUnavailable(ServiceUnavailable):
    """A server process tracing the label images stopped before it finished; nothing was stored. Try again."""


def error_classes() -> dict[str, type[ExportdError]]:
    """Every concrete error by class name, for clients that raise them by name."""
    found: dict[str, type[ExportdError]] = {}
    stack: list[type[ExportdError]] = [ExportdError]
    while stack:
        cls = stack.pop()
        found[cls.__name__] = cls
        stack.extend(cls.__subclasses__())
    return found
