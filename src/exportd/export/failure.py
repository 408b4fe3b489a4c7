"""What a failed export tells its user: a stable code and a sentence, never a path or an exception's text.

The details (the exception, its traceback, the paths) go to the server's log;
the job's `error` and the `export:failed` event carry only what is written here.
"""

from __future__ import annotations

from dataclasses import dataclass

from exportd.faults import storage_fault


@dataclass(frozen=True, slots=True)
class Failure:
    code: str
    message: str
    retryable: bool


STORAGE_UNAVAILABLE = Failure(
    "STORAGE_UNAVAILABLE",
    "The server could not write the export to its storage (it is full, read-only or failing). "
    "Try again later; the administrator can find the details in the server's log.",
    retryable=True,
)
EXPORT_ERROR = Failure(
    "EXPORT_ERROR",
    "The export failed because of an error on the server. "
    "The administrator can find the details in the server's log.",
    retryable=False,
)


def failure_of(error: BaseException) -> Failure:
    """The user's account of an export that raised `error`."""
    return STORAGE_UNAVAILABLE if storage_fault(error) else EXPORT_ERROR
