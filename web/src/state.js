// The client's model of export jobs, as a pure reducer.
//
// `reduce(state, action)` takes what happened (a socket event, a poll result,
// the answer to a cancel, a click) and returns the next state together with
// the effects the caller must carry out (fetch missing events, send a cancel,
// start the auto-download, persist). Nothing here touches the DOM, the
// network, storage or timers, so scripted sequences test it completely.
//
// The rules it enforces (docs/browser.md explains each):
//   * per job the last applied `seq` is kept; duplicates and older events are
//     dropped; a gap buffers the event and asks for the missing ones;
//   * a terminal status (completed, failed, cancelled) is final;
//   * once the user asked to cancel a job it is never auto-downloaded;
//   * auto-download is only ever *scheduled* here, for a completed job this
//     browser started; the downloader re-checks the server before it acts.

/** @typedef {"pending"|"processing"|"completed"|"failed"|"cancelled"} Status */

/**
 * @typedef {object} Job
 * @property {string} jobId
 * @property {string} projectId
 * @property {number} seq              last applied seq (0: nothing applied yet)
 * @property {Status} status
 * @property {boolean} terminal        confirmed by the server (event, poll or cancel answer)
 * @property {number} progress         0–100
 * @property {string|null} stage
 * @property {{current:number,total:number}|null} stageProgress
 * @property {string|null} message
 * @property {number|null} etaSeconds
 * @property {string|null} fileName
 * @property {number|null} exportSize
 * @property {string[]} warnings
 * @property {string|null} error
 * @property {string|null} errorCode
 * @property {string|null} reason       cancel reason
 * @property {string|null} createdAt
 * @property {number} updatedAt        local clock, for picking the job to show
 * @property {boolean} startedHere     started from this browser: eligible for auto-download
 * @property {boolean} cancelRequested the user asked to cancel (here or in another tab)
 * @property {boolean} cancelInFlight  a cancel request of this tab awaits its answer
 * @property {boolean} reconciling     restored from storage, not yet confirmed by the server
 * @property {boolean} syncing         missing events are being fetched
 * @property {boolean} lost            the server no longer shows this job (404)
 * @property {"none"|"scheduled"|"running"|"done"|"aborted"} download
 * @property {null|"finished-before-cancel"} offer
 * @property {null|{kind:string,params:Record<string,any>}} notice   shown as the catalogue's `notice.<kind>`
 * @property {number} attempt          the attempt the job is on (or queued for)
 * @property {number|null} rate        smoothed progress rate, % per second of server time
 * @property {number|null} rateAt      server time (ms) of the last rate sample
 * @property {number} rateProgress     progress at that sample
 * @property {number|null} etaAt       local time (ms) when etaSeconds was computed; the view counts down from it
 * @property {any} options             the job's export options (from the server's view), for "Try again"
 * @property {boolean} [settled]      the terminal follow-up (offer, auto-download, notice) was decided
 * @property {Record<number, object>} buffer   events that arrived ahead of a gap, by seq
 */

/** @typedef {{jobs: Record<string, Job>, cancelIntents: Record<string, true>, downloaded: Record<string, true>}} State */

export const STATUSES = /** @type {const} */ (["pending", "processing", "completed", "failed", "cancelled"]);
export const TERMINAL = new Set(["completed", "failed", "cancelled"]);
export const EVENT_TYPES = /** @type {const} */ ([
  "export:queued", "export:started", "export:progress", "export:completed", "export:failed", "export:cancelled",
]);

/** The rate's smoothing: each new sample weighs this much against the average so far. */
export const ETA_SMOOTHING = 0.3;
/** Samples closer together than this (server time) are too noisy to take. */
const MIN_SAMPLE_MS = 200;

/**
 * A notice about a job: a kind (the catalogue's `notice.<kind>`) and what fills it in.
 * @param {string} kind
 * @param {Record<string, any>} [params]
 */
const notice = (kind, params = {}) => ({ kind, params });

/** @returns {State} */
export function createState() {
  return { jobs: {}, cancelIntents: {}, downloaded: {} };
}

/** @param {string} status */
export function isTerminal(status) {
  return TERMINAL.has(status);
}

/**
 * @param {string} jobId
 * @param {string} projectId
 * @returns {Job}
 */
function blankJob(jobId, projectId) {
  return {
    jobId, projectId, seq: 0, status: "pending", terminal: false, progress: 0, stage: null,
    stageProgress: null, message: null, etaSeconds: null, fileName: null, exportSize: null, warnings: [],
    error: null, errorCode: null, reason: null, createdAt: null, updatedAt: 0, startedHere: false,
    cancelRequested: false, cancelInFlight: false, reconciling: false, syncing: false, lost: false,
    download: "none", offer: null, notice: null, buffer: {}, attempt: 1, rate: null, rateAt: null, rateProgress: 0,
    etaAt: null, options: null,
  };
}

/**
 * The next state and the effects to run.
 *
 * Actions (all carry `now`, the local clock in ms, where it matters):
 *   tracked        {job, startedHere}     a job view from the server (202 on start, history, storage)
 *   restored       {entry}                a persisted entry after a reload; reconciled before shown as final
 *   event          {event}                a socket event payload (has `type` and `seq`)
 *   eventsFetched  {jobId, events, job?}  the answer to a sync (`GET …/events?after=N` or `export:sync`)
 *   syncFailed     {jobId}
 *   snapshot       {job}                  a status poll (`GET …/status`)
 *   jobLost        {jobId}                the status poll answered 404
 *   cancelClicked  {jobId}
 *   cancelShared   {jobId}                another tab of this browser asked to cancel
 *   cancelSucceeded{jobId, job}           200 from the cancel
 *   cancelConflict {jobId, job}           409 from the cancel: the job already completed or failed
 *   cancelFailed   {jobId, error}         the cancel request failed (network, 5xx, …)
 *   downloadStarted{jobId}                the downloader took the job (lock held, server said completed)
 *   downloaded     {jobId}                a download was handed to the browser (here or in another tab)
 *   downloadAborted{jobId, reason, notice?}
 *   downloadGone   {jobId}                the server answered 410 to a download
 *   discarded      {jobId}
 *   dismissed      {jobId}                the user closed the panel of a finished job
 *   forget         {}                     sign-out: drop everything in memory
 *
 * Effects:
 *   {type: "sync", jobId, projectId, afterSeq}
 *   {type: "reconcile", jobId, projectId}        fetch status, then the events after it
 *   {type: "cancel", jobId, projectId}
 *   {type: "shareCancel", jobId}                 tell the other tabs
 *   {type: "autoDownload", jobId, projectId}     schedule the (delayed, re-checked) auto-download
 *   {type: "persist"}                            write `persistable(state)`
 *   {type: "historyChanged", projectId}
 *   {type: "toast", kind, jobId, projectId}     the job just reached its terminal state (kind: the status)
 *
 * @param {State} state
 * @param {any} action
 * @returns {{state: State, effects: any[]}}
 */
export function reduce(state, action) {
  const draft = { jobs: { ...state.jobs }, cancelIntents: state.cancelIntents, downloaded: state.downloaded };
  /** @type {any[]} */
  const effects = [];
  const now = action.now ?? 0;
  const handler = HANDLERS[action.type];
  if (!handler) throw new Error(`unknown action ${action.type}`);
  handler(draft, action, effects, now);
  return { state: draft, effects: dedupe(effects) };
}

/** @type {Record<string, (s: State, a: any, fx: any[], now: number) => void>} */
const HANDLERS = {
  tracked(s, { job: view, startedHere = false }, fx, now) {
    const existing = s.jobs[view.id];
    let job = existing ? { ...existing } : blankJob(view.id, view.projectId);
    job.createdAt = job.createdAt ?? view.createdAt ?? null;
    job.updatedAt = Math.max(job.updatedAt, now);
    s.jobs[view.id] = withIntent(s, job);
    if (startedHere) markStartedHere(s, view.id, fx, now);
    applySnapshot(s, view.id, view, fx, now);
    fx.push({ type: "persist" });
  },

  restored(s, { entry }, fx, now) {
    const existing = s.jobs[entry.jobId];
    if (existing) {
      // This tab already follows it (from a socket event or the history):
      // take over only what the other tab knows about its origin and intent.
      if (entry.cancelRequested && !existing.cancelRequested) HANDLERS.cancelShared(s, { jobId: entry.jobId }, fx, now);
      if (entry.startedHere) markStartedHere(s, entry.jobId, fx, now);
      return;
    }
    const job = blankJob(entry.jobId, entry.projectId);
    // Shown with the last known state, but not final: seq 0 makes the
    // server's snapshot and events apply in full when they come back.
    job.status = isTerminal(entry.status) ? "processing" : (entry.status || "pending");
    job.progress = entry.progress ?? 0;
    job.stage = entry.stage ?? null;
    job.message = entry.message ?? null;
    job.createdAt = entry.createdAt ?? null;
    job.startedHere = Boolean(entry.startedHere);
    job.cancelRequested = Boolean(entry.cancelRequested);
    job.reconciling = true;
    job.updatedAt = now;
    s.jobs[entry.jobId] = withIntent(s, job);
    fx.push({ type: "reconcile", jobId: job.jobId, projectId: job.projectId });
  },

  event(s, { event }, fx, now) {
    if (!event || typeof event.jobId !== "string" || !Number.isInteger(event.seq)) return;
    if (!s.jobs[event.jobId]) {
      s.jobs[event.jobId] = withIntent(s, { ...blankJob(event.jobId, event.projectId), updatedAt: now });
    }
    receive(s, event.jobId, event, fx, now);
  },

  eventsFetched(s, { jobId, events, job: view }, fx, now) {
    const job = s.jobs[jobId];
    if (!job) return;
    s.jobs[jobId] = { ...job, syncing: false };
    const sorted = [...(events || [])].sort((a, b) => a.seq - b.seq);
    for (const event of sorted) receive(s, jobId, event, fx, now, { fromSync: true });
    if (view) applySnapshot(s, jobId, view, fx, now);
    const after = s.jobs[jobId];
    // Still a hole below a buffered event (the fetch raced a newer event): ask again.
    if (after && !after.terminal && Object.keys(after.buffer).length && !after.syncing) {
      s.jobs[jobId] = { ...after, syncing: true };
      fx.push({ type: "sync", jobId, projectId: after.projectId, afterSeq: after.seq });
    }
  },

  syncFailed(s, { jobId }) {
    const job = s.jobs[jobId];
    if (job) s.jobs[jobId] = { ...job, syncing: false };
  },

  snapshot(s, { job: view }, fx, now) {
    if (!s.jobs[view.id]) return;
    applySnapshot(s, view.id, view, fx, now);
  },

  jobLost(s, { jobId }, fx) {
    const job = s.jobs[jobId];
    if (!job || job.terminal) return;
    s.jobs[jobId] = { ...job, lost: true, reconciling: false, download: job.download === "scheduled" ? "aborted" : job.download,
      notice: notice("lost") };
    fx.push({ type: "persist" });
  },

  cancelClicked(s, { jobId }, fx, now) {
    const job = s.jobs[jobId];
    if (!job || !canCancel(job)) return; // includes rapid clicks: one request at a time
    s.cancelIntents = { ...s.cancelIntents, [jobId]: true };
    const next = { ...job, cancelRequested: true, cancelInFlight: true, notice: null, updatedAt: now };
    // Completed, and its auto-download still waiting: the cancel stops the
    // download here, and the server's 409 will say it finished first.
    if (job.download === "scheduled" || job.download === "running") next.download = "aborted";
    s.jobs[jobId] = next;
    fx.push({ type: "cancel", jobId, projectId: job.projectId }, { type: "shareCancel", jobId }, { type: "persist" });
  },

  cancelShared(s, { jobId }, fx) {
    if (s.cancelIntents[jobId]) return;
    s.cancelIntents = { ...s.cancelIntents, [jobId]: true };
    const job = s.jobs[jobId];
    if (!job) return;
    const next = { ...job, cancelRequested: true };
    if (job.download === "scheduled") next.download = "aborted";
    if (job.terminal && job.status === "completed" && job.download !== "done") {
      next.offer = "finished-before-cancel";
      next.notice = notice("finished-before-cancel");
    }
    s.jobs[jobId] = next;
    fx.push({ type: "persist" });
  },

  cancelSucceeded(s, { jobId, job: view }, fx, now) {
    const job = s.jobs[jobId];
    if (!job) return;
    s.jobs[jobId] = { ...job, cancelInFlight: false };
    if (view) applySnapshot(s, jobId, view, fx, now);
    fx.push({ type: "persist" });
  },

  cancelConflict(s, { jobId, job: view }, fx, now) {
    const job = s.jobs[jobId];
    if (!job) return;
    s.jobs[jobId] = { ...job, cancelInFlight: false };
    if (view) applySnapshot(s, jobId, view, fx, now);
    const after = s.jobs[jobId];
    if (after.status === "completed") {
      s.jobs[jobId] = { ...after, offer: "finished-before-cancel", notice: notice("finished-before-cancel") };
    } else if (after.status === "failed") {
      s.jobs[jobId] = { ...after, notice: notice("already-failed", { error: after.error ?? "" }) };
    }
    fx.push({ type: "persist" });
  },

  cancelFailed(s, { jobId, error }, fx) {
    const job = s.jobs[jobId];
    if (!job) return;
    // The intent stays (no auto-download ever); the button becomes usable again.
    s.jobs[jobId] = { ...job, cancelInFlight: false, notice: notice("cancel-failed", { error: error ?? "" }) };
    fx.push({ type: "persist" });
  },

  downloadStarted(s, { jobId }) {
    const job = s.jobs[jobId];
    if (job) s.jobs[jobId] = { ...job, download: "running" };
  },

  downloaded(s, { jobId }, fx) {
    s.downloaded = { ...s.downloaded, [jobId]: true };
    const job = s.jobs[jobId];
    if (job) s.jobs[jobId] = { ...job, download: "done" };
    fx.push({ type: "persist" });
  },

  downloadAborted(s, { jobId, notice: kind, error }, fx) {
    const job = s.jobs[jobId];
    if (!job) return;
    s.jobs[jobId] = { ...job, download: job.download === "done" ? "done" : "aborted",
      notice: kind ? notice(kind, error !== undefined ? { error } : {}) : job.notice };
    fx.push({ type: "persist" });
  },

  downloadGone(s, { jobId }, fx) {
    const job = s.jobs[jobId];
    if (!job) return;
    s.jobs[jobId] = { ...job, download: job.download === "done" ? "done" : "aborted", offer: null,
      notice: notice("gone") };
    fx.push({ type: "persist" });
  },

  discarded(s, { jobId }, fx) {
    const job = s.jobs[jobId];
    delete s.jobs[jobId];
    fx.push({ type: "persist" });
    if (job) fx.push({ type: "historyChanged", projectId: job.projectId });
  },

  dismissed(s, { jobId }, fx) {
    const job = s.jobs[jobId];
    if (!job || !(job.terminal || job.lost)) return;
    delete s.jobs[jobId];
    fx.push({ type: "persist" });
  },

  forget(s) {
    s.jobs = {};
    s.cancelIntents = {};
    s.downloaded = {};
  },
};

/**
 * The job was started from this browser (this tab's 202, or another tab's entry):
 * it becomes eligible for auto-download. If its events beat the news (a tiny
 * export that completed before the 202 was handled), the follow-up is decided again.
 */
function markStartedHere(s, jobId, fx, now) {
  const job = s.jobs[jobId];
  if (!job || job.startedHere) return;
  s.jobs[jobId] = { ...job, startedHere: true, settled: false };
  if (job.terminal) settle(s, jobId, fx, now);
}

/** A job carries the cancel intent recorded for it, even if the intent came first. */
function withIntent(s, job) {
  return s.cancelIntents[job.jobId] && !job.cancelRequested ? { ...job, cancelRequested: true } : job;
}

/**
 * One event for one job: drop old ones, apply the next one, buffer the ones past a gap.
 * @param {State} s
 */
function receive(s, jobId, event, fx, now, { fromSync = false } = {}) {
  let job = s.jobs[jobId];
  if (job.terminal || job.lost) return; // terminal is final
  if (event.seq <= job.seq) return; // duplicate or older
  if (event.seq > job.seq + 1) {
    job = { ...job, buffer: { ...job.buffer, [event.seq]: event } };
    if (!job.syncing && !fromSync) {
      job.syncing = true;
      fx.push({ type: "sync", jobId, projectId: job.projectId, afterSeq: job.seq });
    }
    s.jobs[jobId] = job;
    return;
  }
  job = applyEvent(job, event, now);
  // Drain the buffer while it continues the sequence.
  while (!job.terminal && job.buffer[job.seq + 1]) {
    job = applyEvent(job, job.buffer[job.seq + 1], now);
  }
  job = { ...job, buffer: pruneBuffer(job.buffer, job.seq, job.terminal) };
  s.jobs[jobId] = job;
  settle(s, jobId, fx, now);
}

function pruneBuffer(buffer, seq, terminal) {
  if (terminal) return {};
  const kept = {};
  for (const [key, value] of Object.entries(buffer)) if (Number(key) > seq) kept[key] = value;
  return kept;
}

/**
 * The job after one in-order event.
 * @param {Job} job
 * @returns {Job}
 */
export function applyEvent(job, event, now = 0) {
  const next = { ...job, seq: event.seq, updatedAt: Math.max(job.updatedAt, now), reconciling: false };
  if (event.projectId) next.projectId = event.projectId;
  if (STATUSES.includes(event.status)) next.status = event.status;
  switch (event.type) {
    case "export:queued":
      next.progress = 0; // a requeued attempt starts over
      next.stage = null;
      next.stageProgress = null;
      next.message = null;
      next.attempt = (Number(event.attempt) || 0) + 1;
      Object.assign(next, { etaSeconds: null, etaAt: null, rate: null, rateAt: null, rateProgress: 0 });
      break;
    case "export:started":
      next.message = null;
      next.attempt = Number(event.attempt) || job.attempt;
      next.etaSeconds = event.estimatedDuration ?? null;
      next.etaAt = next.etaSeconds == null ? null : now;
      next.rateAt = serverTime(event);
      next.rateProgress = job.progress;
      break;
    case "export:progress":
      next.progress = Math.max(job.progress, clampProgress(event.progress));
      next.stage = event.stage ?? job.stage;
      next.stageProgress = event.stageProgress ?? null;
      next.message = event.message ?? job.message;
      Object.assign(next, smoothedEta(job, next.progress, serverTime(event), event.etaSeconds, now));
      break;
    case "export:completed":
      next.progress = 100;
      next.etaSeconds = null;
      next.message = null;
      next.fileName = event.fileName ?? null;
      next.exportSize = event.exportSize ?? null;
      next.warnings = event.warnings ?? [];
      break;
    case "export:failed":
      next.etaSeconds = null;
      next.error = event.error ?? null;
      next.errorCode = event.code ?? null;
      next.message = null;
      break;
    case "export:cancelled":
      next.etaSeconds = null;
      next.reason = event.reason ?? null;
      next.message = null;
      break;
    default:
      break;
  }
  next.terminal = isTerminal(next.status);
  return next;
}

/** @returns {number|null} */
function serverTime(event) {
  const at = Date.parse(event.timestamp);
  return Number.isFinite(at) ? at : null;
}

/**
 * The ETA after a progress event: the progress rate, measured on the server's clock between
 * events and smoothed by an exponential moving average, gives the seconds left; until there is
 * a rate, the server's own `etaSeconds`. `etaAt` is when (locally) the view starts counting down.
 * @param {Job} job
 * @param {number} progress
 * @param {number|null} at
 * @param {number|null|undefined} serverEta
 * @param {number} now
 */
export function smoothedEta(job, progress, at, serverEta, now) {
  let { rate, rateAt, rateProgress } = job;
  if (at != null && (rateAt == null || at < rateAt)) {
    rateAt = at;
    rateProgress = progress;
  } else if (at != null && rateAt != null && at - rateAt >= MIN_SAMPLE_MS) {
    const sample = ((progress - rateProgress) / (at - rateAt)) * 1000;
    rate = rate == null ? sample : ETA_SMOOTHING * sample + (1 - ETA_SMOOTHING) * rate;
    rateAt = at;
    rateProgress = progress;
  }
  let etaSeconds = rate != null && rate > 0 ? (100 - progress) / rate : (serverEta ?? null);
  if (etaSeconds != null && !Number.isFinite(etaSeconds)) etaSeconds = null;
  return { rate, rateAt, rateProgress, etaSeconds, etaAt: etaSeconds == null ? null : now };
}

function clampProgress(value) {
  const n = Number(value);
  if (!Number.isFinite(n)) return 0;
  return Math.min(100, Math.max(0, n));
}

/**
 * The server's job view (status poll, cancel answer, history) applied to a job.
 * It applies only if it is newer than what the job has seen (its seq is greater);
 * a terminal job never changes.
 */
function applySnapshot(s, jobId, view, fx, now) {
  let job = s.jobs[jobId];
  if (!job) return;
  if (view.options && !job.options) job = s.jobs[jobId] = { ...job, options: view.options }; // for "Try again"
  if (job.terminal || job.lost) {
    if (job.reconciling) s.jobs[jobId] = { ...job, reconciling: false };
    return;
  }
  const seq = Number.isInteger(view.seq) ? view.seq : 0;
  if (seq > job.seq && STATUSES.includes(view.status)) {
    job = {
      ...job,
      seq,
      status: view.status,
      progress: view.status === "completed" ? 100 : Math.max(job.progress, clampProgress(view.progress ?? 0)),
      stage: view.stage ?? job.stage,
      message: view.message ?? job.message,
      etaSeconds: view.status === "processing" ? job.etaSeconds : null,
      fileName: view.fileName ?? job.fileName,
      exportSize: view.exportSize ?? job.exportSize,
      warnings: view.warnings ?? job.warnings,
      error: view.error ?? job.error,
      errorCode: view.errorCode ?? job.errorCode,
      reason: view.reason ?? job.reason,
      createdAt: job.createdAt ?? view.createdAt ?? null,
      updatedAt: Math.max(job.updatedAt, now),
    };
    job.terminal = isTerminal(job.status);
    job.buffer = pruneBuffer(job.buffer, job.seq, job.terminal);
  }
  job.reconciling = false;
  s.jobs[jobId] = job;
  settle(s, jobId, fx, now);
  // Buffered events may now continue the sequence.
  const after = s.jobs[jobId];
  if (!after.terminal && after.buffer[after.seq + 1]) {
    const first = after.buffer[after.seq + 1];
    receive(s, jobId, first, fx, now);
  }
}

/**
 * What follows a change: on reaching a terminal state, decide the offer or the
 * auto-download, and whether the job stays persisted.
 */
function settle(s, jobId, fx, now) {
  const job = s.jobs[jobId];
  fx.push({ type: "persist" });
  if (!job.terminal || job.settled) return;
  const next = { ...job, settled: true, updatedAt: Math.max(job.updatedAt, now) };
  fx.push({ type: "historyChanged", projectId: job.projectId });
  if (job.status === "completed") {
    if (job.cancelRequested) {
      next.offer = "finished-before-cancel";
      next.notice = notice("finished-before-cancel");
    } else if (s.downloaded[jobId]) {
      next.download = "done";
    } else if (job.startedHere && job.download === "none") {
      next.download = "scheduled";
      fx.push({ type: "autoDownload", jobId, projectId: job.projectId });
    }
  } else if (job.status === "failed") {
    next.notice = notice("failed", { error: job.error ?? "" });
  } else if (job.status === "cancelled") {
    next.notice = job.reason === "timeout" ? notice("cancelled-timeout")
      : job.reason === "system_cancelled" ? notice("cancelled-system")
        : job.notice?.kind === "cancel-failed" ? null : job.notice;
  }
  s.jobs[jobId] = next;
  fx.push({ type: "toast", kind: job.status, jobId, projectId: job.projectId });
}

function dedupe(effects) {
  const seen = new Set();
  const out = [];
  for (const effect of effects) {
    const key = JSON.stringify(effect);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(effect);
  }
  return out;
}

// -- questions the effect code asks -------------------------------------------------

/**
 * Whether the Cancel button does anything: the job is still running, or it
 * completed but its auto-download has not been handed to the browser yet.
 * @param {Job} job
 */
export function canCancel(job) {
  if (job.lost || job.cancelInFlight) return false;
  if (!job.terminal) return true;
  return job.status === "completed" && !job.cancelRequested && (job.download === "scheduled" || job.download === "running");
}

/**
 * May the auto-download of this job go ahead right now? Asked again after every
 * wait (the delay, the lock, the status re-check, the token request).
 * @param {State} state
 * @param {string} jobId
 */
export function mayAutoDownload(state, jobId) {
  const job = state.jobs[jobId];
  if (!job) return { ok: false, reason: "unknown" };
  if (job.cancelRequested || state.cancelIntents[jobId]) return { ok: false, reason: "cancel-requested" };
  if (!job.terminal || job.status !== "completed") return { ok: false, reason: "not-completed" };
  if (!job.startedHere) return { ok: false, reason: "not-started-here" };
  if (job.download === "done" || state.downloaded[jobId]) return { ok: false, reason: "already-downloaded" };
  if (job.download === "aborted") return { ok: false, reason: "aborted" };
  return { ok: true, reason: "" };
}

/**
 * The decision after the re-check of `GET …/status` right before downloading.
 * @param {{status?: string, available?: boolean} | null} server
 */
export function decideAfterRecheck(server) {
  if (!server) return { ok: false, reason: "unreachable" };
  if (server.status === "completed" && server.available !== false) return { ok: true, reason: "" };
  if (server.status === "completed") return { ok: false, reason: "gone", notice: "gone" };
  if (server.status === "cancelled") return { ok: false, reason: "cancelled", notice: "cancelled-before-download" };
  return { ok: false, reason: `status-${server.status}` };
}

/**
 * What survives a reload: the jobs that are not final yet, and completed jobs
 * still waiting for their auto-download. A job the user cancelled, once the
 * server confirmed it, is not kept.
 * @param {State} state
 */
export function persistable(state) {
  const entries = [];
  for (const job of Object.values(state.jobs)) {
    if (job.lost) continue;
    const waiting = job.terminal && job.status === "completed" && (job.download === "scheduled" || job.download === "running");
    if (job.terminal && !waiting) continue;
    if (!job.terminal && !job.startedHere && !job.cancelRequested) continue; // only what this browser started or cancelled
    entries.push({
      jobId: job.jobId, projectId: job.projectId, status: job.status, progress: job.progress, stage: job.stage,
      message: job.message, createdAt: job.createdAt, startedHere: job.startedHere, cancelRequested: job.cancelRequested,
    });
  }
  return entries;
}

/** The jobs to poll: not final, not lost. */
export function jobsToPoll(state) {
  return Object.values(state.jobs).filter((job) => !job.terminal && !job.lost);
}

/**
 * The job the panel shows for a project: the active one if any, else the most
 * recently changed one.
 * @param {State} state
 * @param {string} projectId
 * @returns {Job|null}
 */
export function currentJob(state, projectId) {
  const jobs = Object.values(state.jobs).filter((job) => job.projectId === projectId);
  if (!jobs.length) return null;
  const rank = (job) => (!job.terminal && !job.lost ? 1 : 0);
  jobs.sort((a, b) => rank(b) - rank(a) || b.updatedAt - a.updatedAt || (b.createdAt || "").localeCompare(a.createdAt || ""));
  return jobs[0];
}
