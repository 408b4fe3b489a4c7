"""The client's per-job state: scripted sequences of events, polls and cancels, then a property over any order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from exportd.client.state import CancelOutcome, Ignored, JobState, Snapshot
from exportd.domain.events import Cancelled, Completed, EventBase, Failed, Progress, Queued, Started
from exportd.domain.jobs import JobStatus

JOB, PROJECT, USER = "job-1", "project-1", "user-1"
AT = "2025-01-02T03:04:05.000000Z"


def _common(seq: int, status: str) -> dict:
    return {"job_id": JOB, "project_id": PROJECT, "user_id": USER, "seq": seq, "status": status, "timestamp": AT}


def queued(seq: int = 1) -> Queued:
    return Queued(**_common(seq, "pending"), queued_at=AT, position=0)


def started(seq: int = 2) -> Started:
    return Started(**_common(seq, "processing"), started_at=AT, estimated_duration=None, attempt=1)


def progress(seq: int, percent: float) -> Progress:
    return Progress(**_common(seq, "processing"), progress=percent, stage="images",
                    stage_progress={"current": 1, "total": 2}, message="", eta_seconds=None)


def completed(seq: int) -> Completed:
    return Completed(**_common(seq, "completed"), completed_at=AT, processing_time=1.0, export_size=10,
                     file_name="x.zip", download_url="/x", warnings=[])


def failed(seq: int) -> Failed:
    return Failed(**_common(seq, "failed"), failed_at=AT, error="boom", code="INTERNAL_ERROR", retryable=False)


def cancelled(seq: int) -> Cancelled:
    return Cancelled(**_common(seq, "cancelled"), cancelled_at=AT, reason="user_cancelled", cancelled_by=USER,
                     previous_status="processing", progress=40)


def log(progress_events: int, terminal) -> list[EventBase]:
    events: list[EventBase] = [queued(1), started(2)]
    events += [progress(3 + i, 10.0 * (i + 1)) for i in range(progress_events)]
    events.append(terminal(len(events) + 1))
    return events


def seqs(events) -> list[int]:
    return [event.seq for event in events]


# -- scripted sequences ---------------------------------------------------------------------------------------------

def test_events_in_order_are_applied_and_a_terminal_event_makes_the_state_done():
    state = JobState(JOB)
    applied = [e for event in log(2, completed) for e in state.receive(event).applied]
    assert seqs(applied) == [1, 2, 3, 4, 5]
    assert state.status == JobStatus.COMPLETED and state.is_final and state.done
    assert state.progress == 100


def test_a_duplicate_event_is_ignored_and_an_older_one_is_stale():
    state = JobState(JOB)
    state.receive(queued(1))
    state.receive(started(2))
    assert state.receive(started(2)).ignored == Ignored.DUPLICATE
    assert state.receive(queued(1)).ignored == Ignored.STALE
    assert state.last_seq == 2


def test_an_event_past_a_gap_is_held_and_asks_for_the_missing_events():
    state = JobState(JOB)
    state.receive(queued(1))
    receipt = state.receive(progress(4, 20))
    assert receipt.held and receipt.fetch_after == 1 and receipt.applied == ()
    assert state.gap_after == 1

    fill = state.receive_all([started(2), progress(3, 10), progress(4, 20)])
    assert seqs(fill.applied) == [2, 3, 4]
    assert fill.fetch_after is None and state.gap_after is None and state.progress == 20


def test_reordered_events_are_applied_in_seq_order_once_the_gap_closes():
    state = JobState(JOB)
    out = []
    for event in [started(2), progress(3, 10), queued(1)]:
        out += state.receive(event).applied
    assert seqs(out) == [1, 2, 3]


def test_a_late_completed_after_a_local_cancel_is_never_auto_downloaded_and_says_finished_before_cancel():
    state = JobState(JOB)
    state.receive_all(log(1, completed)[:-1])
    state.request_cancel()
    state.receive(completed(4))  # it completed in the same millisecond as the cancel
    state.observe({"status": "completed", "seq": 4})
    assert state.status == JobStatus.COMPLETED
    assert not state.may_auto_download
    assert state.finished_before_cancel
    assert state.cancel_answered({"status": "completed", "seq": 4}) == CancelOutcome.FINISHED_BEFORE_CANCEL
    assert not state.may_auto_download


def test_completed_seen_only_by_polling_after_a_cancel_is_not_downloadable():
    state = JobState(JOB)
    state.receive_all([queued(1), started(2)])
    state.request_cancel()
    receipt = state.observe(Snapshot(JobStatus.COMPLETED, seq=5))
    assert state.status == JobStatus.COMPLETED and state.is_final
    assert receipt.fetch_after == 2  # the poll is ahead: fetch the events it implies
    assert not state.may_auto_download and state.finished_before_cancel


def test_a_terminal_state_is_final_whatever_follows():
    state = JobState(JOB)
    state.receive_all(log(1, cancelled))  # seq 1..4, cancelled at 4
    assert state.receive(progress(5, 90)).ignored == Ignored.AFTER_TERMINAL
    assert state.receive(completed(6)).ignored == Ignored.AFTER_TERMINAL
    assert state.receive(progress(3, 30)).ignored == Ignored.STALE
    state.observe({"status": "completed", "seq": 6})  # a lying poll cannot change it either
    assert state.status == JobStatus.CANCELLED and not state.may_auto_download


def test_a_terminal_poll_is_final_at_once_and_earlier_events_still_fill_in_as_history():
    state = JobState(JOB)
    state.receive(queued(1))
    state.observe({"status": "failed", "seq": 4})
    assert state.status == JobStatus.FAILED and not state.done  # the terminal event itself is still missing
    assert seqs(state.receive(started(2)).applied) == [2]
    assert state.status == JobStatus.FAILED  # history does not move a final status back
    fill = state.receive_all([progress(3, 10), failed(4)])
    assert seqs(fill.applied) == [3, 4]
    assert state.status == JobStatus.FAILED and state.done


def test_auto_download_needs_the_servers_status_not_just_the_completed_event():
    state = JobState(JOB)
    state.receive_all(log(0, completed))
    assert state.done and not state.may_auto_download
    state.observe({"status": "completed", "seq": 3})
    assert state.may_auto_download
    state.mark_downloaded()
    assert not state.may_auto_download  # exactly one download


def test_a_processing_poll_ahead_of_the_events_asks_for_a_fill():
    state = JobState(JOB)
    state.receive(queued(1))
    assert state.observe({"status": "processing", "seq": 3}).fetch_after == 1
    state.receive_all([started(2), progress(3, 10)])
    assert state.gap_after is None


def test_a_cancel_answered_200_ends_as_cancelled():
    state = JobState(JOB)
    state.receive_all([queued(1), started(2)])
    state.request_cancel()
    assert state.cancel_answered({"status": "cancelled", "seq": 3}) == CancelOutcome.CANCELLED
    assert state.status == JobStatus.CANCELLED and state.gap_after == 2
    state.receive(cancelled(3))
    assert state.done and not state.may_auto_download


def test_events_of_another_job_are_ignored():
    other = queued(1).model_copy(update={"job_id": "job-2"})
    assert JobState(JOB).receive(other).ignored == Ignored.OTHER_JOB


# -- any order, any duplication ------------------------------------------------------------------------------------

TERMINALS = {"completed": completed, "failed": failed, "cancelled": cancelled}


@st.composite
def deliveries(draw):
    """A true log, and what a client receives of it: any subset, duplicated, in any order; plus when the
    user cancels (or never), and how often a poll of the true state comes in between."""
    terminal = draw(st.sampled_from(sorted(TERMINALS)))
    true_log = log(draw(st.integers(0, 6)), TERMINALS[terminal])
    received = draw(st.lists(st.sampled_from(true_log), max_size=3 * len(true_log)))
    cancel_at = draw(st.one_of(st.none(), st.integers(0, len(received))))
    polls = draw(st.lists(st.integers(0, len(received)), max_size=3))
    return true_log, received, cancel_at, set(polls)


@settings(max_examples=300, deadline=None)
@given(deliveries())
def test_any_delivery_with_fills_from_the_true_log_converges_and_applies_each_seq_once_in_order(case):
    true_log, received, cancel_at, polls = case
    final = true_log[-1]
    state = JobState(JOB)
    applied: list[int] = []
    download_allowed_after_cancel = []

    def fill(receipt) -> None:
        while receipt.fetch_after is not None:  # what the SDK does: fetch the stored events after N
            receipt = state.receive_all([e for e in true_log if e.seq > receipt.fetch_after])
            applied.extend(seqs(receipt.applied))

    def poll(upto: int) -> None:
        """The server's status as of the `upto`-th delivery (a prefix of the true log, at least seq 1)."""
        known = max([e.seq for e in received[:upto]] + [1])
        current = true_log[known - 1]
        receipt = state.observe({"status": current.status, "seq": current.seq})
        fill(receipt)

    for index, event in enumerate(received):
        if index == cancel_at:
            state.request_cancel()
        if index in polls:
            poll(index)
        receipt = state.receive(event)
        applied.extend(seqs(receipt.applied))
        fill(receipt)
        if state.cancel_requested:
            download_allowed_after_cancel.append(state.may_auto_download)
    if cancel_at == len(received):
        state.request_cancel()

    # The periodic reconcile: the server's final status, then the fill it asks for.
    fill(state.observe({"status": final.status, "seq": final.seq}))
    if state.cancel_requested:
        download_allowed_after_cancel.append(state.may_auto_download)

    assert applied == list(range(1, len(true_log) + 1))  # each seq once, in order, none missing
    assert state.done and state.status == final.status and state.terminal_event == final
    assert not any(download_allowed_after_cancel)
    if state.cancel_requested:
        assert not state.may_auto_download
        assert state.finished_before_cancel == (final.status == JobStatus.COMPLETED)
    else:
        assert state.may_auto_download == (final.status == JobStatus.COMPLETED)
