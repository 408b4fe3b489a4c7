// Builders for scripted event sequences, and a "tab": the real reducer and
// downloader wired to shared doubles of localStorage and navigator.locks.

import { Downloader } from "../src/downloader.js";
import { createState, reduce } from "../src/state.js";

export const PROJECT = "p-1";
export const JOB = "j-1";

let clock = 1_000;

/** An event payload as the server sends it (DESIGN §2). */
export function ev(seq, type, extra = {}, jobId = JOB) {
  const status = {
    queued: "pending", started: "processing", progress: "processing",
    completed: "completed", failed: "failed", cancelled: "cancelled",
  }[type];
  const base = { jobId, projectId: PROJECT, userId: "u-1", seq, status, timestamp: new Date(clock += 10).toISOString(), type: `export:${type}` };
  const fields = {
    queued: { queuedAt: base.timestamp, position: 0, attempt: 0 },
    started: { startedAt: base.timestamp, estimatedDuration: null, attempt: 1 },
    progress: { progress: seq * 10, stage: "images", stageProgress: { current: seq, total: 10 }, message: `image ${seq}`, etaSeconds: 3 },
    completed: { completedAt: base.timestamp, processingTime: 1.5, exportSize: 1234, fileName: "Demo_j-1.zip", downloadUrl: "/x", warnings: [] },
    failed: { failedAt: base.timestamp, error: "disk full", code: "INTERNAL_ERROR", retryable: false },
    cancelled: { cancelledAt: base.timestamp, reason: "user_cancelled", cancelledBy: "u-1", previousStatus: "processing", progress: 40 },
  }[type];
  return { ...base, ...fields, ...extra };
}

/** A job view as `GET …/status` returns it. */
export function view(status, seq, extra = {}, jobId = JOB) {
  return {
    id: jobId, projectId: PROJECT, userId: "u-1", status, progress: status === "completed" ? 100 : 40, stage: "images",
    message: "working", seq, createdAt: "2026-01-01T00:00:00Z", available: status === "completed",
    fileName: status === "completed" ? "Demo_j-1.zip" : null, exportSize: status === "completed" ? 1234 : null,
    reason: status === "cancelled" ? "user_cancelled" : null, error: status === "failed" ? "disk full" : null, warnings: [],
    ...extra,
  };
}

/** Fold actions through the reducer; collect every effect. */
export function run(actions, state = createState()) {
  const effects = [];
  for (const action of actions) {
    const result = reduce(state, { now: (clock += 1), ...action });
    state = result.state;
    effects.push(...result.effects);
  }
  return { state, effects, job: state.jobs[JOB] };
}

export const only = (effects, type) => effects.filter((effect) => effect.type === type);

/** A fake of the HTTP API the downloader uses; `statusOf` and `tokenOf` are swappable. */
export function fakeApi({ status = () => view("completed", 9), token = () => ({ token: "t", expiresAt: "" }) } = {}) {
  const calls = { status: 0, token: 0 };
  return {
    calls,
    statusOf: status,
    tokenOf: token,
    async status(projectId, jobId) {
      calls.status += 1;
      await tick();
      return this.statusOf(projectId, jobId);
    },
    async downloadToken(projectId, jobId) {
      calls.token += 1;
      await tick();
      return this.tokenOf(projectId, jobId);
    },
  };
}

export function httpError(status, message = `HTTP ${status}`) {
  return Object.assign(new Error(message), { status });
}

export const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

/**
 * One browser tab: its own state, the real reducer, a real Downloader, and
 * shared `storage`, `locks` and `downloads` (what reached the browser).
 */
export function createTab({ storage, locks, api = fakeApi(), downloads, delayMs = 5, name = "tab" }) {
  const tab = { state: createState(), effects: [], name };
  tab.dispatch = (action) => {
    const result = reduce(tab.state, { now: (clock += 1), ...action });
    tab.state = result.state;
    tab.effects.push(...result.effects);
    for (const effect of result.effects) {
      if (effect.type === "autoDownload") tab.pending.push(tab.downloader.schedule(effect.jobId, effect.projectId));
    }
  };
  tab.pending = [];
  tab.downloader = new Downloader({
    getState: () => tab.state,
    dispatch: (action) => tab.dispatch(action),
    api,
    storage,
    locks,
    trigger: (url, fileName) => downloads.push({ tab: name, url, fileName }),
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    now: () => Date.now(),
    delayMs,
    tabId: name,
  });
  tab.settle = async () => {
    while (tab.pending.length) await tab.pending.shift();
  };
  return tab;
}
