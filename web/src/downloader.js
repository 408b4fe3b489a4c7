// Downloads: the delayed, re-checked, once-per-job auto-download, and the
// manual download. Every dependency is passed in, so tests run two "tabs"
// against one storage and one lock manager.
//
// An auto-download goes ahead only if, in this order:
//   1. after the delay, the state still allows it (completed, started here, no cancel asked);
//   2. this tab holds the job's lock (navigator.locks, shared by all tabs of the origin);
//   3. no tab has marked the job downloaded (localStorage);
//   4. the server's own status, fetched now, says `completed` (and the file is available);
//   5. a download token was issued, and the state still allows it.
// Then the job is marked downloaded *before* the browser is handed the URL,
// so a reload or another tab never downloads it again.

import { decideAfterRecheck, mayAutoDownload } from "./state.js";
import { isDownloaded, keys, markDownloaded } from "./persist.js";

export const LOCK_PREFIX = "exportd-download-";

/**
 * @typedef {object} DownloaderDeps
 * @property {() => import("./state.js").State} getState
 * @property {(action: object) => void} dispatch
 * @property {{status(p: string, j: string): Promise<any>, downloadToken(p: string, j: string): Promise<{token: string, url?: string}>}} api
 * @property {Storage} storage
 * @property {{request: Function} | null | undefined} locks   navigator.locks, when the browser has it
 * @property {(url: string, fileName: string|null) => void} trigger   hands the URL to the browser (<a download>)
 * @property {(ms: number) => Promise<void>} sleep
 * @property {() => number} now
 * @property {number} delayMs
 * @property {string} tabId
 * @property {(jobId: string, kind: "auto"|"manual") => void} [onDownload]
 */

export function downloadUrl(projectId, jobId, token) {
  return `/api/projects/${encodeURIComponent(projectId)}/export/${encodeURIComponent(jobId)}/download?token=${encodeURIComponent(token)}`;
}

export class Downloader {
  /** @param {DownloaderDeps} deps */
  constructor(deps) {
    this.deps = deps;
    /** @type {Map<string, Promise<string>>} auto-downloads this tab is running, by job */
    this.running = new Map();
    this.stopped = false;
  }

  stop() {
    this.stopped = true;
  }

  /**
   * Start the auto-download of a job, unless this tab is already on it.
   * Resolves to what happened: "downloaded" or the reason it did not.
   */
  schedule(jobId, projectId) {
    const existing = this.running.get(jobId);
    if (existing) return existing;
    const attempt = this.#auto(jobId, projectId).finally(() => this.running.delete(jobId));
    this.running.set(jobId, attempt);
    return attempt;
  }

  async #auto(jobId, projectId) {
    const { dispatch, sleep, delayMs } = this.deps;
    await sleep(delayMs);
    const before = this.#allowed(jobId);
    if (before) {
      dispatch({ type: "downloadAborted", jobId, reason: before });
      return before;
    }
    return this.#withLock(jobId, async () => {
      const { api, storage, getState } = this.deps;
      if (isDownloaded(storage, jobId)) {
        dispatch({ type: "downloaded", jobId });
        return "already-downloaded";
      }
      const again = this.#allowed(jobId);
      if (again) {
        dispatch({ type: "downloadAborted", jobId, reason: again });
        return again;
      }
      dispatch({ type: "downloadStarted", jobId });
      let server = null;
      try {
        server = await api.status(projectId, jobId);
      } catch (error) {
        if (error?.status === 404) {
          dispatch({ type: "downloadAborted", jobId, reason: "gone", notice: "gone" });
          return "gone";
        }
        server = null;
      }
      const decision = decideAfterRecheck(server);
      if (!decision.ok) {
        dispatch({ type: "downloadAborted", jobId, reason: decision.reason, notice: decision.notice });
        return decision.reason;
      }
      const afterStatus = this.#allowed(jobId);
      if (afterStatus) {
        dispatch({ type: "downloadAborted", jobId, reason: afterStatus });
        return afterStatus;
      }
      let token;
      try {
        token = await api.downloadToken(projectId, jobId);
      } catch (error) {
        if (error?.status === 410) {
          dispatch({ type: "downloadGone", jobId });
          return "gone";
        }
        dispatch({ type: "downloadAborted", jobId, reason: "token-failed", notice: "download-failed", error: error?.message ?? "" });
        return "token-failed";
      }
      const last = this.#allowed(jobId);
      if (last) {
        dispatch({ type: "downloadAborted", jobId, reason: last });
        return last;
      }
      if (isDownloaded(storage, jobId)) {
        dispatch({ type: "downloaded", jobId });
        return "already-downloaded";
      }
      markDownloaded(storage, jobId, this.deps.now());
      const job = getState().jobs[jobId];
      this.deps.trigger(downloadUrl(projectId, jobId, token.token), job?.fileName ?? null);
      this.deps.onDownload?.(jobId, "auto");
      dispatch({ type: "downloaded", jobId });
      return "downloaded";
    });
  }

  /** The reason the auto-download must not go ahead, or "" if it may. */
  #allowed(jobId) {
    if (this.stopped) return "stopped";
    const verdict = mayAutoDownload(this.deps.getState(), jobId);
    if (verdict.ok) return "";
    // "running" is this attempt itself
    return verdict.reason;
  }

  /**
   * Run `work` while holding the job's download lock, shared by every tab.
   * Without navigator.locks, a claim in localStorage stands in for it.
   */
  async #withLock(jobId, work) {
    const { locks } = this.deps;
    if (locks && typeof locks.request === "function") {
      return locks.request(LOCK_PREFIX + jobId, { mode: "exclusive" }, () => work());
    }
    return this.#withClaim(jobId, work);
  }

  async #withClaim(jobId, work) {
    const { storage, tabId, now, sleep } = this.deps;
    const key = keys.claim(jobId);
    const current = readClaim(storage, key);
    if (current && current.tab !== tabId && now() - current.at < 30_000) return "claimed-elsewhere";
    storage.setItem(key, JSON.stringify({ tab: tabId, at: now() }));
    await sleep(50); // let a racing tab's write land, then see who won
    const winner = readClaim(storage, key);
    if (!winner || winner.tab !== tabId) return "claimed-elsewhere";
    try {
      return await work();
    } finally {
      storage.removeItem(key);
    }
  }

  /**
   * A download the user asked for. No auto-download rules apply, but the
   * server still decides: 410 means the export is no longer available.
   * @returns {Promise<{ok: boolean, reason?: string, message?: string}>}
   */
  async manual(projectId, jobId, fileName = null) {
    const { api, storage, dispatch } = this.deps;
    let token;
    try {
      token = await api.downloadToken(projectId, jobId);
    } catch (error) {
      if (error?.status === 410 || error?.status === 404) {
        dispatch({ type: "downloadGone", jobId });
        return { ok: false, reason: "gone" };
      }
      if (error?.status === 409) return { ok: false, reason: "not-ready", message: error.message };
      return { ok: false, reason: "failed", message: error?.message ?? "" };
    }
    markDownloaded(storage, jobId, this.deps.now());
    this.deps.trigger(downloadUrl(projectId, jobId, token.token), fileName);
    this.deps.onDownload?.(jobId, "manual");
    dispatch({ type: "downloaded", jobId });
    return { ok: true };
  }
}

function readClaim(storage, key) {
  try {
    const raw = storage.getItem(key);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

/** An in-memory navigator.locks (exclusive mode only), for tests. */
export class MemoryLocks {
  constructor() {
    /** @type {Map<string, Promise<unknown>>} */
    this.tails = new Map();
  }

  request(name, optionsOrCallback, maybeCallback) {
    const callback = typeof optionsOrCallback === "function" ? optionsOrCallback : maybeCallback;
    const previous = this.tails.get(name) ?? Promise.resolve();
    const result = previous.then(() => callback({ name, mode: "exclusive" }));
    const tail = result.catch(() => undefined);
    this.tails.set(name, tail);
    return result;
  }
}
