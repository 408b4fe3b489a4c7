"""What one client knows about one export job, and what it may do next. Pure: no I/O, no clock.

A `JobState` is fed three kinds of facts and answers each with a `Receipt`:

* events (typed, from ``exportd.domain.events``), from the socket or from a
  gap fill: applied strictly in ``seq`` order, each once. An event past a gap
  is held back and the receipt asks the driver to fetch the events after the
  last applied ``seq``; once they arrive the held ones follow in order.
* status snapshots (the job as ``GET …/status`` or a cancel answer shows it):
  the server's own word. A snapshot ahead of the applied events asks for a
  fetch too; a terminal snapshot makes the status final at once.
* local actions: the user asked to cancel; the server answered the cancel.

Rules it keeps, whatever order facts arrive in:

* a terminal status is final: nothing after it changes the view;
* once the user asked to cancel, the job is never auto-downloaded; if the
  export had already completed, `finished_before_cancel` says so and a manual
  download (or a discard) is the user's call;
* auto-download needs a status snapshot that says ``completed``: an
  ``export:completed`` event alone is not enough.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from exportd.domain.events import EventBase
from exportd.domain.jobs import JobStatus


class Ignored(StrEnum):
    """Why an event changed nothing."""

    DUPLICATE = "duplicate"  #: this seq was already applied
    STALE = "stale"  #: older than what is already applied (or already held back)
    AFTER_TERMINAL = "after_terminal"  #: the job is final; later seqs cannot exist
    OTHER_JOB = "other_job"  #: the event belongs to another job


class CancelOutcome(StrEnum):
    """How a local cancel ended, as far as this client knows."""

    CANCELLED = "cancelled"  #: the server committed the cancel
    FINISHED_BEFORE_CANCEL = "finished_before_cancel"  #: the export completed first (409)
    FAILED_BEFORE_CANCEL = "failed_before_cancel"  #: the export failed first (409)


@dataclass(frozen=True, slots=True)
class Receipt:
    """The answer to one fact: what got applied (in seq order), and what to do next."""

    applied: tuple[EventBase, ...] = ()
    ignored: Ignored | None = None
    fetch_after: int | None = None  #: a gap: fetch the events after this seq and feed them
    held: bool = False  #: the event waits behind a gap

    @property
    def changed(self) -> bool:
        return bool(self.applied)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The fields of a job view (HTTP status, cancel answer, sync ack) this state reads."""

    status: JobStatus
    seq: int
    progress: float | None = None
    stage: str | None = None

    @classmethod
    def of(cls, job: Mapping[str, Any] | Any) -> Snapshot:
        """From a job view dict (camelCase, as the server sends it) or an object with these attributes."""
        if isinstance(job, Mapping):
            return cls(JobStatus(job["status"]), int(job["seq"]), job.get("progress"), job.get("stage"))
        return cls(JobStatus(job.status), int(job.seq), getattr(job, "progress", None), getattr(job, "stage", None))


class JobState:
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.last_seq = 0  #: the last applied seq; events apply strictly as last_seq + 1
        self.status: JobStatus | None = None  #: the client's view; final once terminal
        self.progress: float = 0.0
        self.stage: str | None = None
        self.terminal_seq: int | None = None  #: the seq of the terminal event, once known
        self.terminal_event: EventBase | None = None
        self.known_seq = 0  #: the highest seq the server is known to have stored
        self.cancel_requested = False
        self.cancel_outcome: CancelOutcome | None = None
        self.confirmed_completed = False  #: a status snapshot (not just an event) said completed
        self.downloaded = False
        self._held: dict[int, EventBase] = {}  #: events past a gap, by seq

    # -- what the client may do --------------------------------------------------------------------------------

    @property
    def is_final(self) -> bool:
        return self.status is not None and self.status.is_terminal

    @property
    def caught_up(self) -> bool:
        """Every event the server is known to have stored is applied (and the terminal one, when final)."""
        if self.terminal_seq is not None:
            return self.last_seq >= self.terminal_seq
        return self.last_seq >= self.known_seq and not self._held

    @property
    def done(self) -> bool:
        """Final, and the terminal event itself has been applied: a watch can end."""
        return self.is_final and self.terminal_event is not None and self.caught_up

    @property
    def gap_after(self) -> int | None:
        """The seq to fetch after, when events are known to be missing."""
        return self.last_seq if not self.caught_up else None

    @property
    def may_auto_download(self) -> bool:
        """Only a completed job the server confirmed, that the user never asked to cancel, downloaded once."""
        return (self.status == JobStatus.COMPLETED and self.confirmed_completed
                and not self.cancel_requested and not self.downloaded)

    @property
    def finished_before_cancel(self) -> bool:
        """The user asked to cancel, but the export had already completed: offer a manual download or a discard."""
        return self.cancel_requested and self.status == JobStatus.COMPLETED

    # -- facts -------------------------------------------------------------------------------------------------

    def receive(self, event: EventBase) -> Receipt:
        """One event, from the socket or a fill, in whatever order it came."""
        if event.job_id != self.job_id:
            return Receipt(ignored=Ignored.OTHER_JOB)
        if event.seq <= self.last_seq:
            return Receipt(ignored=Ignored.DUPLICATE if event.seq == self.last_seq else Ignored.STALE)
        if self.terminal_seq is not None and event.seq > self.terminal_seq:
            return Receipt(ignored=Ignored.AFTER_TERMINAL)
        if event.seq in self._held:
            return Receipt(ignored=Ignored.DUPLICATE, fetch_after=self.gap_after)
        self.known_seq = max(self.known_seq, event.seq)
        if event.seq > self.last_seq + 1:
            self._held[event.seq] = event
            return Receipt(fetch_after=self.last_seq, held=True)
        applied = self._apply_run(event)
        return Receipt(applied=applied, fetch_after=self.gap_after)

    def receive_all(self, events: Iterable[EventBase]) -> Receipt:
        """A batch (a fill, a catch-up), in any order: applied in seq order."""
        applied: list[EventBase] = []
        for event in sorted(events, key=lambda e: e.seq):
            applied.extend(self.receive(event).applied)
        return Receipt(applied=tuple(applied), fetch_after=self.gap_after)

    def observe(self, job: Snapshot | Mapping[str, Any] | Any) -> Receipt:
        """A status snapshot: the server's own word on the job's status and its latest seq."""
        snapshot = job if isinstance(job, Snapshot) else Snapshot.of(job)
        self.known_seq = max(self.known_seq, snapshot.seq)
        if snapshot.status.is_terminal:
            self._finalise(snapshot.status, snapshot.seq)
            if snapshot.status == JobStatus.COMPLETED and self.status == JobStatus.COMPLETED:
                self.confirmed_completed = True
        elif not self.is_final and snapshot.seq == self.last_seq and snapshot.progress is not None:
            self.progress = max(self.progress, snapshot.progress)
        return Receipt(fetch_after=self.gap_after)

    def request_cancel(self) -> None:
        """The user asked to cancel. From now on this job is never auto-downloaded."""
        self.cancel_requested = True

    def cancel_answered(self, job: Snapshot | Mapping[str, Any] | Any) -> CancelOutcome | None:
        """The server's answer to the cancel (200, or 409 with the job): the job as it now stands."""
        self.request_cancel()  # an answer implies the question, even if the caller skipped it
        self.observe(job)
        snapshot = job if isinstance(job, Snapshot) else Snapshot.of(job)
        self.cancel_outcome = {
            JobStatus.CANCELLED: CancelOutcome.CANCELLED,
            JobStatus.COMPLETED: CancelOutcome.FINISHED_BEFORE_CANCEL,
            JobStatus.FAILED: CancelOutcome.FAILED_BEFORE_CANCEL,
        }.get(snapshot.status)
        return self.cancel_outcome

    def mark_downloaded(self) -> None:
        self.downloaded = True

    # -- internals ---------------------------------------------------------------------------------------------

    def _apply_run(self, event: EventBase) -> tuple[EventBase, ...]:
        """Apply `event` (seq == last_seq + 1) and every held event that now follows without a gap."""
        applied = []
        while event is not None:
            self._apply(event)
            applied.append(event)
            if self.terminal_seq is not None and self.last_seq >= self.terminal_seq:
                self._held.clear()  # nothing follows a terminal event
                break
            event = self._held.pop(self.last_seq + 1, None)
        return tuple(applied)

    def _apply(self, event: EventBase) -> None:
        self.last_seq = event.seq
        status = JobStatus(event.status)
        if status.is_terminal:
            self.terminal_event = event
            self._finalise(status, event.seq)
            return
        if self.is_final:
            return  # history filled in behind a final status: the view stays as it is
        self.status = status
        progress = getattr(event, "progress", None)
        if progress is not None and status == JobStatus.PROCESSING:
            self.progress = max(self.progress, float(progress))
        self.stage = getattr(event, "stage", self.stage)

    def _finalise(self, status: JobStatus, seq: int) -> None:
        """The first terminal fact wins; the contract allows only one terminal status per job."""
        if self.is_final:
            return
        self.status = status
        self.terminal_seq = seq
        self._held = {s: e for s, e in self._held.items() if s <= seq}
        if status == JobStatus.COMPLETED:
            self.progress = 100.0
