"""The export job state machine (DESIGN §1).

Every arrow here is carried out by exactly one guarded statement in the store:
a compare-and-set on the current status that also bumps the job's ``seq`` and
writes one event row. This module only names the states and the arrows.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class JobStatus(StrEnum):
    PENDING = "pending"  #: accepted, waiting for a worker
    PROCESSING = "processing"  #: a worker holds the lease and builds the ZIP
    COMPLETED = "completed"  #: ZIP written, downloadable until it expires
    FAILED = "failed"  #: the export raised, or its lease ran out too often
    CANCELLED = "cancelled"  #: stopped by a user, the time limit or the system

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
ACTIVE = frozenset({JobStatus.PENDING, JobStatus.PROCESSING})


class CancelReason(StrEnum):
    USER_CANCELLED = "user_cancelled"  #: the owner asked for it
    TIMEOUT = "timeout"  #: the job ran past its time limit
    SYSTEM_CANCELLED = "system_cancelled"  #: project deleted, access revoked, operator


class EventType(StrEnum):
    QUEUED = "export:queued"
    STARTED = "export:started"
    PROGRESS = "export:progress"
    COMPLETED = "export:completed"
    FAILED = "export:failed"
    CANCELLED = "export:cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (EventType.COMPLETED, EventType.FAILED, EventType.CANCELLED)


@dataclass(frozen=True, slots=True)
class Transition:
    """One arrow of the state machine: the statuses it may start from, where it ends."""

    name: str
    sources: frozenset[JobStatus]
    target: JobStatus
    event: EventType
    fenced: bool  #: guarded by the worker's attempt number as well as the status


CLAIM = Transition("claim", frozenset({JobStatus.PENDING}), JobStatus.PROCESSING, EventType.STARTED, False)
PROGRESS = Transition("progress", frozenset({JobStatus.PROCESSING}), JobStatus.PROCESSING, EventType.PROGRESS, True)
COMPLETE = Transition("complete", frozenset({JobStatus.PROCESSING}), JobStatus.COMPLETED, EventType.COMPLETED, True)
FAIL = Transition("fail", frozenset({JobStatus.PROCESSING}), JobStatus.FAILED, EventType.FAILED, True)
REQUEUE = Transition("requeue", frozenset({JobStatus.PROCESSING}), JobStatus.PENDING, EventType.QUEUED, True)
CANCEL = Transition("cancel", ACTIVE, JobStatus.CANCELLED, EventType.CANCELLED, False)

TRANSITIONS = (CLAIM, PROGRESS, COMPLETE, FAIL, REQUEUE, CANCEL)
