import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  createState, currentJob, decideAfterRecheck, jobsToPoll, mayAutoDownload, persistable, reduce,
} from "../src/state.js";
import { translator } from "../src/i18n.js";
import { noticeText, remainingSeconds } from "../src/view.js";
import { ev, JOB, only, PROJECT, run, view } from "./helpers.js";

const en = translator("en");
const said = (notice) => noticeText(notice, en);

const started = (status = "pending", seq = 1) => ({ type: "tracked", job: view(status, seq, { progress: 0 }), startedHere: true });
const event = (e) => ({ type: "event", event: e });

describe("ordering by seq", () => {
  test("events in order are applied and the last seq is kept", () => {
    const { job } = run([started(), event(ev(2, "started")), event(ev(3, "progress")), event(ev(4, "progress"))]);
    assert.equal(job.seq, 4);
    assert.equal(job.status, "processing");
    assert.equal(job.progress, 40);
    assert.equal(job.message, "image 4");
  });

  test("a duplicate event changes nothing and asks for nothing", () => {
    const first = run([started(), event(ev(2, "started")), event(ev(3, "progress"))]);
    const again = run([event(ev(3, "progress", { progress: 99, message: "dup" }))], first.state);
    assert.deepEqual(again.job, first.job);
    assert.equal(only(again.effects, "sync").length, 0);
  });

  test("an older event is ignored", () => {
    const { job, effects } = run([started(), event(ev(2, "started")), event(ev(3, "progress")), event(ev(2, "started", { status: "processing" })), event(ev(1, "queued"))]);
    assert.equal(job.seq, 3);
    assert.equal(job.status, "processing");
    assert.equal(only(effects, "sync").length, 0);
  });

  test("an event that arrives early waits for the one before it", () => {
    const { job, effects } = run([started(), event(ev(3, "progress")), event(ev(2, "started"))]);
    assert.equal(job.seq, 3);
    assert.equal(job.progress, 30);
    assert.deepEqual(only(effects, "sync"), [{ type: "sync", jobId: JOB, projectId: PROJECT, afterSeq: 1 }]);
    assert.deepEqual(job.buffer, {});
  });

  test("a gap asks for the missing events once and applies them in order", () => {
    const gap = run([started(), event(ev(5, "progress")), event(ev(6, "progress"))]);
    assert.equal(gap.job.seq, 1, "nothing past the gap is applied yet");
    assert.deepEqual(only(gap.effects, "sync"), [{ type: "sync", jobId: JOB, projectId: PROJECT, afterSeq: 1 }]);
    const filled = run([{ type: "eventsFetched", jobId: JOB, events: [ev(4, "progress"), ev(2, "started"), ev(3, "progress")] }], gap.state);
    assert.equal(filled.job.seq, 6, "fetched 2–4, then the buffered 5 and 6");
    assert.equal(filled.job.progress, 60);
    assert.equal(filled.job.syncing, false);
    assert.equal(only(filled.effects, "sync").length, 0);
  });

  test("a fetch that does not close the gap asks again from where it got to", () => {
    const gap = run([started(), event(ev(6, "progress"))]);
    const partial = run([{ type: "eventsFetched", jobId: JOB, events: [ev(2, "started"), ev(3, "progress")] }], gap.state);
    assert.equal(partial.job.seq, 3);
    assert.deepEqual(only(partial.effects, "sync"), [{ type: "sync", jobId: JOB, projectId: PROJECT, afterSeq: 3 }]);
  });

  test("an event for a job this tab does not know fetches its history from the start", () => {
    const { state, effects } = run([event(ev(3, "progress", {}, "other"))]);
    assert.equal(state.jobs.other.seq, 0);
    assert.deepEqual(only(effects, "sync"), [{ type: "sync", jobId: "other", projectId: PROJECT, afterSeq: 0 }]);
    assert.equal(state.jobs.other.startedHere, false);
  });

  test("progress shown never decreases, and a requeue starts the bar over", () => {
    const { job } = run([started(), event(ev(2, "started")), event(ev(3, "progress", { progress: 50 })), event(ev(4, "progress", { progress: 20 }))]);
    assert.equal(job.progress, 50);
    const requeued = run([event(ev(4, "queued", { attempt: 1 }))], run([started(), event(ev(2, "started")), event(ev(3, "progress"))]).state);
    assert.equal(requeued.job.status, "pending");
    assert.equal(requeued.job.progress, 0);
  });
});

describe("terminal states are final", () => {
  test("progress after cancelled changes nothing", () => {
    const { job, effects } = run([started(), event(ev(2, "started")), event(ev(3, "cancelled")), event(ev(4, "progress")), event(ev(5, "completed"))]);
    assert.equal(job.status, "cancelled");
    assert.equal(job.seq, 3);
    assert.equal(only(effects, "autoDownload").length, 0);
  });

  test("a poll after a terminal event changes nothing", () => {
    const { job } = run([started(), event(ev(2, "failed")), { type: "snapshot", job: view("processing", 9) }, { type: "snapshot", job: view("completed", 10) }]);
    assert.equal(job.status, "failed");
    assert.equal(job.seq, 2);
  });

  test("buffered events past a terminal one are dropped", () => {
    const { job } = run([started(), event(ev(4, "progress")), { type: "eventsFetched", jobId: JOB, events: [ev(2, "started"), ev(3, "cancelled")] }]);
    assert.equal(job.status, "cancelled");
    assert.equal(job.seq, 3);
    assert.deepEqual(job.buffer, {});
  });

  test("failed shows the error and is not polled any more", () => {
    const { state, job } = run([started(), { type: "snapshot", job: view("failed", 4) }]);
    assert.equal(job.status, "failed");
    assert.match(said(job.notice), /disk full/);
    assert.deepEqual(jobsToPoll(state), []);
  });
});

describe("cancel", () => {
  test("rapid repeated clicks send one request", () => {
    const { effects, job } = run([started(), event(ev(2, "started")), { type: "cancelClicked", jobId: JOB }, { type: "cancelClicked", jobId: JOB }, { type: "cancelClicked", jobId: JOB }]);
    assert.equal(only(effects, "cancel").length, 1);
    assert.equal(only(effects, "shareCancel").length, 1);
    assert.equal(job.cancelInFlight, true);
  });

  test("cancel at 7.5 s, then a late export:completed: no download", () => {
    const { job, effects } = run([
      started(), event(ev(2, "started")), event(ev(3, "progress")),
      { type: "cancelClicked", jobId: JOB },
      { type: "cancelSucceeded", jobId: JOB, job: view("cancelled", 4) },
      event(ev(5, "completed")),
    ]);
    assert.equal(job.status, "cancelled");
    assert.equal(only(effects, "autoDownload").length, 0);
    assert.equal(mayAutoDownload({ jobs: { [JOB]: job }, cancelIntents: {}, downloaded: {} }, JOB).ok, false);
  });

  test("cancel, then `completed` 500 ms later before the cancel answer: no download, the offer instead", () => {
    const { state, job, effects } = run([
      started(), event(ev(2, "started")),
      { type: "cancelClicked", jobId: JOB },
      event(ev(3, "completed")),
    ]);
    assert.equal(job.status, "completed");
    assert.equal(only(effects, "autoDownload").length, 0);
    assert.equal(job.offer, "finished-before-cancel");
    assert.equal(mayAutoDownload(state, JOB).reason, "cancel-requested");
  });

  test("409 because it already completed: says so and offers download and discard", () => {
    const { job, effects } = run([
      started(), event(ev(2, "started")),
      { type: "cancelClicked", jobId: JOB },
      { type: "cancelConflict", jobId: JOB, job: view("completed", 5) },
    ]);
    assert.equal(job.status, "completed");
    assert.equal(job.offer, "finished-before-cancel");
    assert.equal(job.notice.kind, "finished-before-cancel");
    assert.match(said(job.notice), /finished before it could be cancelled/);
    assert.equal(job.cancelInFlight, false);
    assert.equal(only(effects, "autoDownload").length, 0);
  });

  test("a poll that returns completed after the user's cancel does not auto-download", () => {
    const { job, effects } = run([
      started(), event(ev(2, "started")),
      { type: "cancelClicked", jobId: JOB },
      { type: "cancelFailed", jobId: JOB, error: "network down" },
      { type: "snapshot", job: view("completed", 6) },
    ]);
    assert.equal(job.status, "completed");
    assert.equal(only(effects, "autoDownload").length, 0);
    assert.equal(job.offer, "finished-before-cancel");
  });

  test("a failing cancel is reported and the button works again, still without auto-download", () => {
    const failed = run([started(), event(ev(2, "started")), { type: "cancelClicked", jobId: JOB }, { type: "cancelFailed", jobId: JOB, error: "HTTP 500" }]);
    assert.equal(failed.job.cancelInFlight, false);
    assert.equal(failed.job.notice.kind, "cancel-failed");
    assert.match(said(failed.job.notice), /HTTP 500/);
    const retry = run([{ type: "cancelClicked", jobId: JOB }], failed.state);
    assert.equal(only(retry.effects, "cancel").length, 1, "a second request is allowed once the first failed");
    const done = run([{ type: "cancelSucceeded", jobId: JOB, job: view("cancelled", 3) }], retry.state);
    assert.equal(done.job.status, "cancelled");
    assert.equal(done.job.notice, null, "the failure notice goes once the cancel went through");
  });

  test("a cancel from another tab stops this tab's auto-download", () => {
    const { state, effects } = run([started(), event(ev(2, "started")), { type: "cancelShared", jobId: JOB }, event(ev(3, "completed"))]);
    assert.equal(only(effects, "autoDownload").length, 0);
    assert.equal(only(effects, "cancel").length, 0, "the other tab sent the request");
    assert.equal(state.jobs[JOB].offer, "finished-before-cancel");
  });

  test("a cancel intent recorded before the job is known still applies", () => {
    const { effects } = run([{ type: "cancelShared", jobId: JOB }, event(ev(1, "queued")), event(ev(2, "completed")), started("completed", 2)]);
    assert.equal(only(effects, "autoDownload").length, 0);
  });

  test("cancel during the auto-download delay aborts it and asks the server", () => {
    const completed = run([started(), event(ev(2, "started")), event(ev(3, "completed"))]);
    assert.equal(only(completed.effects, "autoDownload").length, 1);
    assert.equal(completed.job.download, "scheduled");
    const cancelled = run([{ type: "cancelClicked", jobId: JOB }], completed.state);
    assert.equal(only(cancelled.effects, "cancel").length, 1);
    assert.equal(cancelled.job.download, "aborted");
    assert.equal(mayAutoDownload(cancelled.state, JOB).ok, false);
    const answered = run([{ type: "cancelConflict", jobId: JOB, job: view("completed", 3) }], cancelled.state);
    assert.equal(answered.job.offer, "finished-before-cancel");
  });

  test("a finished job cannot be cancelled once its download was handed over", () => {
    const { effects } = run([started(), event(ev(2, "completed")), { type: "downloaded", jobId: JOB }, { type: "cancelClicked", jobId: JOB }]);
    assert.equal(only(effects, "cancel").length, 0);
  });
});

describe("auto-download decisions", () => {
  test("completed and not cancelled: exactly one auto-download, whatever repeats", () => {
    const { effects, job } = run([
      started(), event(ev(2, "started")), event(ev(3, "completed")), event(ev(3, "completed")),
      { type: "snapshot", job: view("completed", 3) }, { type: "eventsFetched", jobId: JOB, events: [ev(3, "completed")], job: view("completed", 3) },
    ]);
    assert.deepEqual(only(effects, "autoDownload"), [{ type: "autoDownload", jobId: JOB, projectId: PROJECT }]);
    assert.equal(job.download, "scheduled");
  });

  test("a job started elsewhere is offered for download, not auto-downloaded", () => {
    const { effects, job } = run([{ type: "tracked", job: view("processing", 3), startedHere: false }, event(ev(4, "completed"))]);
    assert.equal(only(effects, "autoDownload").length, 0);
    assert.equal(job.status, "completed");
  });

  test("our own start whose events beat the 202 still auto-downloads once", () => {
    const { effects } = run([event(ev(1, "queued")), event(ev(2, "started")), event(ev(3, "completed")), started("pending", 1)]);
    assert.equal(only(effects, "autoDownload").length, 1);
  });

  test("an already-downloaded job is never scheduled again", () => {
    const { effects, job } = run([{ type: "downloaded", jobId: JOB }, started(), event(ev(2, "completed"))]);
    assert.equal(only(effects, "autoDownload").length, 0);
    assert.equal(job.download, "done");
  });

  test("the re-check must say completed and available", () => {
    assert.equal(decideAfterRecheck(view("completed", 3)).ok, true);
    assert.deepEqual(decideAfterRecheck(view("cancelled", 4)), { ok: false, reason: "cancelled", notice: "cancelled-before-download" });
    assert.equal(decideAfterRecheck(view("processing", 2)).ok, false);
    assert.equal(decideAfterRecheck({ ...view("completed", 3), available: false }).notice, "gone");
    assert.equal(decideAfterRecheck(null).ok, false);
  });

  test("mayAutoDownload says why not", () => {
    const state = createState();
    assert.equal(mayAutoDownload(state, JOB).reason, "unknown");
    const processing = run([started(), event(ev(2, "started"))]).state;
    assert.equal(mayAutoDownload(processing, JOB).reason, "not-completed");
    const done = run([event(ev(3, "completed"))], processing).state;
    assert.equal(mayAutoDownload(done, JOB).ok, true);
    const downloaded = run([{ type: "downloaded", jobId: JOB }], done).state;
    assert.equal(mayAutoDownload(downloaded, JOB).reason, "already-downloaded");
  });
});

describe("reload and restore", () => {
  const entry = { jobId: JOB, projectId: PROJECT, status: "processing", progress: 40, stage: "images", message: "m", startedHere: true, cancelRequested: false };

  test("a restored job is reconciled with the server before it can be final", () => {
    const restored = run([{ type: "restored", entry }]);
    assert.deepEqual(only(restored.effects, "reconcile"), [{ type: "reconcile", jobId: JOB, projectId: PROJECT }]);
    assert.equal(restored.job.terminal, false);
    assert.equal(restored.job.reconciling, true);
    assert.equal(restored.job.progress, 40);
    const reconciled = run([{ type: "snapshot", job: view("completed", 7) }], restored.state);
    assert.equal(reconciled.job.status, "completed");
    assert.equal(only(reconciled.effects, "autoDownload").length, 1);
  });

  test("a persisted terminal status is not trusted until the server says so", () => {
    const { job } = run([{ type: "restored", entry: { ...entry, status: "completed" } }]);
    assert.equal(job.terminal, false);
    assert.equal(job.status, "processing");
  });

  test("a job downloaded before the reload is not downloaded again", () => {
    const { effects } = run([{ type: "downloaded", jobId: JOB }, { type: "restored", entry }, { type: "snapshot", job: view("completed", 7) }]);
    assert.equal(only(effects, "autoDownload").length, 0);
  });

  test("persisted: running jobs and completed jobs awaiting their download; not cancelled ones", () => {
    const running = run([started(), event(ev(2, "started"))]).state;
    assert.equal(persistable(running).length, 1);
    const waiting = run([event(ev(3, "completed"))], running).state;
    assert.equal(persistable(waiting).length, 1, "a reload before the download still downloads it");
    const downloaded = run([{ type: "downloaded", jobId: JOB }], waiting).state;
    assert.deepEqual(persistable(downloaded), []);
    const cancelled = run([{ type: "cancelClicked", jobId: JOB }, { type: "cancelSucceeded", jobId: JOB, job: view("cancelled", 3) }], running).state;
    assert.deepEqual(persistable(cancelled), [], "cancel clears the persisted active state");
  });

  test("a cancel awaiting its answer is persisted with the intent, and never restored as downloadable", () => {
    const pending = run([started(), event(ev(2, "started")), { type: "cancelClicked", jobId: JOB }]).state;
    const [saved] = persistable(pending);
    assert.equal(saved.cancelRequested, true);
    const reloaded = run([{ type: "restored", entry: saved }, { type: "snapshot", job: view("completed", 5) }]);
    assert.equal(only(reloaded.effects, "autoDownload").length, 0);
    assert.equal(reloaded.job.offer, "finished-before-cancel");
    const confirmed = run([{ type: "restored", entry: saved }, { type: "snapshot", job: view("cancelled", 3) }]);
    assert.deepEqual(persistable(confirmed.state), [], "a cancelled job is not restored after the next reload");
  });

  test("another tab's entry for a job this tab follows makes it ours, once", () => {
    const { effects, job } = run([
      { type: "tracked", job: view("processing", 2), startedHere: false },
      { type: "restored", entry },
      event(ev(3, "completed")),
    ]);
    assert.equal(job.startedHere, true);
    assert.equal(only(effects, "reconcile").length, 0);
    assert.equal(only(effects, "autoDownload").length, 1);
  });

  test("a job the server no longer shows stops being polled and persisted", () => {
    const { state, job } = run([{ type: "restored", entry }, { type: "jobLost", jobId: JOB }]);
    assert.equal(job.lost, true);
    assert.deepEqual(jobsToPoll(state), []);
    assert.deepEqual(persistable(state), []);
  });
});

describe("what the panel shows", () => {
  test("the running job of the project wins over an older finished one", () => {
    let { state } = run([{ type: "tracked", job: view("completed", 3, {}, "old"), startedHere: false }]);
    ({ state } = run([started("processing", 2)], state));
    assert.equal(currentJob(state, PROJECT).jobId, JOB);
    assert.equal(currentJob(state, "elsewhere"), null);
  });

  test("discard and dismiss remove the job", () => {
    const done = run([started(), event(ev(2, "failed"))]).state;
    assert.equal(run([{ type: "discarded", jobId: JOB }], done).job, undefined);
    assert.equal(run([{ type: "dismissed", jobId: JOB }], done).job, undefined);
    const running = run([started()]).state;
    assert.ok(run([{ type: "dismissed", jobId: JOB }], running).job, "a running job cannot be dismissed");
  });

  test("malformed events are ignored", () => {
    const { state } = run([event(null), event({ seq: 1 }), event({ jobId: JOB, seq: "x" })]);
    assert.deepEqual(state.jobs, {});
  });

  test("an unknown action is a programming error", () => {
    assert.throws(() => reduce(createState(), { type: "nope" }), /unknown action/);
  });
});

describe("the ETA", () => {
  /** A progress event at `second` seconds of server time. */
  const time = (second) => new Date(Date.UTC(2026, 0, 1, 0, 0, 0, second * 1000)).toISOString();
  const at = (seq, progress, second, etaSeconds = 99) => event(ev(seq, "progress", { progress, etaSeconds, timestamp: time(second) }));
  const begin = event(ev(2, "started", { timestamp: time(0) }));

  test("is the smoothed rate's, so one fast burst does not make it jump", () => {
    // 10 % every 2 s, then a burst of 20 % in 1 s
    const steady = run([started(), begin, at(3, 10, 2), at(4, 20, 4), at(5, 30, 6)]);
    assert.ok(Math.abs(steady.job.etaSeconds - 14) < 1e-9, `70 % left at 5 %/s: ${steady.job.etaSeconds}`);
    const burst = run([at(6, 50, 7)], steady.state).job;
    const raw = 50 / 20; // 50 % left at the burst's own 20 %/s
    assert.ok(burst.etaSeconds > 2 * raw, `smoothed ${burst.etaSeconds} s, not the burst's ${raw} s`);
    assert.ok(burst.etaSeconds < 10, "but it does move towards the faster rate");
  });

  test("falls back to the server's estimate until there is a rate, and counts down between events", () => {
    const { job } = run([started(), at(2, 10, 2, 30)]); // followed from mid-way: no start to measure from
    assert.equal(job.etaSeconds, 30);
    assert.equal(remainingSeconds(job, job.etaAt + 4000), 26);
    assert.equal(remainingSeconds(job, job.etaAt + 60_000), 0, "never below zero");
  });

  test("a requeued attempt starts its rate over", () => {
    const running = run([started(), begin, at(3, 10, 2), at(4, 20, 4)]);
    const requeued = run([event(ev(5, "queued", { attempt: 1 }))], running.state).job;
    assert.deepEqual([requeued.etaSeconds, requeued.rate, requeued.rateAt, requeued.attempt], [null, null, null, 2]);
  });
});

describe("what a finished job leaves behind", () => {
  test("one toast per job, when it reaches its terminal state", () => {
    for (const terminal of ["completed", "failed", "cancelled"]) {
      const { effects, state } = run([started(), event(ev(2, "started")), event(ev(3, terminal))]);
      assert.deepEqual(only(effects, "toast").map((e) => e.kind), [terminal]);
      const late = run([{ type: "snapshot", job: view(terminal, 4) }, event(ev(4, "progress"))], state);
      assert.equal(only(late.effects, "toast").length, 0, "no second toast");
    }
  });

  test("a failed job keeps its options, for Try again", () => {
    const { job } = run([{ type: "tracked", job: view("pending", 1, { options: { includeDocumentation: true } }), startedHere: true },
      event(ev(2, "started")), event(ev(3, "failed"))]);
    assert.deepEqual(job.options, { includeDocumentation: true });
    assert.deepEqual(job.notice, { kind: "failed", params: { error: "disk full" } });
  });
});
