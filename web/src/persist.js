// What this browser remembers in localStorage, shared by all its tabs.
//
// Every function takes a Storage-like object (`getItem`, `setItem`,
// `removeItem`, `key`, `length`), so tests pass a Map-backed double.
//
//   exportd:v1:job:<userId>:<jobId>   a job that is not final yet (see state.persistable)
//   exportd:v1:cancel:<jobId>         the user asked to cancel this job (never auto-download it)
//   exportd:v1:downloaded:<jobId>     this job was auto- or manually downloaded (never again)
//   exportd:v1:claim:<jobId>          download claim, only where navigator.locks is missing
//
// One key per job, so two tabs never overwrite each other's entries with a
// read-modify-write of a shared list.

export const PREFIX = "exportd:v1:";
const KEEP_MARKS_MS = 7 * 24 * 3600 * 1000; // marks outlive the 24 h retention of the exports

export const keys = {
  job: (userId, jobId) => `${PREFIX}job:${userId}:${jobId}`,
  jobPrefix: (userId) => `${PREFIX}job:${userId}:`,
  cancel: (jobId) => `${PREFIX}cancel:${jobId}`,
  downloaded: (jobId) => `${PREFIX}downloaded:${jobId}`,
  claim: (jobId) => `${PREFIX}claim:${jobId}`,
};

/** What a storage key is about, for the `storage` event of other tabs. */
export function parseKey(key) {
  if (typeof key !== "string" || !key.startsWith(PREFIX)) return null;
  const [kind, ...rest] = key.slice(PREFIX.length).split(":");
  if (kind === "job" && rest.length === 2) return { kind, userId: rest[0], jobId: rest[1] };
  if ((kind === "cancel" || kind === "downloaded" || kind === "claim") && rest.length === 1) return { kind, jobId: rest[0] };
  return null;
}

function readJson(storage, key) {
  try {
    const raw = storage.getItem(key);
    return raw == null ? null : JSON.parse(raw);
  } catch {
    return null;
  }
}

function writeJson(storage, key, value) {
  try {
    storage.setItem(key, JSON.stringify(value));
    return true;
  } catch {
    return false; // full or disabled storage: the in-memory state still holds
  }
}

function allKeys(storage) {
  const found = [];
  for (let i = 0; i < storage.length; i += 1) {
    const key = storage.key(i);
    if (key != null) found.push(key);
  }
  return found;
}

/** The persisted entries of one user's unfinished jobs. */
export function loadJobs(storage, userId) {
  const prefix = keys.jobPrefix(userId);
  return allKeys(storage)
    .filter((key) => key.startsWith(prefix))
    .map((key) => readJson(storage, key))
    .filter((entry) => entry && typeof entry.jobId === "string" && typeof entry.projectId === "string");
}

/**
 * Write this tab's persistable entries; remove the keys of jobs this tab
 * follows that are no longer persistable. Keys of jobs this tab does not
 * know are left alone (another tab owns them).
 * @param {Storage} storage
 * @param {string} userId
 * @param {Array<{jobId: string}>} entries   state.persistable(state)
 * @param {Iterable<string>} knownJobIds      every job this tab follows, or followed until just now
 */
export function saveJobs(storage, userId, entries, knownJobIds) {
  const keep = new Set();
  for (const entry of entries) {
    keep.add(entry.jobId);
    const key = keys.job(userId, entry.jobId);
    const raw = JSON.stringify(entry);
    if (storage.getItem(key) !== raw) {
      try {
        storage.setItem(key, raw);
      } catch {
        /* storage full or disabled */
      }
    }
  }
  for (const jobId of knownJobIds) {
    if (!keep.has(jobId)) storage.removeItem(keys.job(userId, jobId));
  }
}

export function removeJob(storage, userId, jobId) {
  storage.removeItem(keys.job(userId, jobId));
}

export function markCancel(storage, jobId, now) {
  writeJson(storage, keys.cancel(jobId), { at: now });
}

export function hasCancel(storage, jobId) {
  return storage.getItem(keys.cancel(jobId)) != null;
}

export function markDownloaded(storage, jobId, now) {
  return writeJson(storage, keys.downloaded(jobId), { at: now });
}

export function isDownloaded(storage, jobId) {
  return storage.getItem(keys.downloaded(jobId)) != null;
}

/** The job ids with a cancel intent and the ones already downloaded. */
export function loadMarks(storage) {
  const cancels = [];
  const downloads = [];
  for (const key of allKeys(storage)) {
    const parsed = parseKey(key);
    if (parsed?.kind === "cancel") cancels.push(parsed.jobId);
    if (parsed?.kind === "downloaded") downloads.push(parsed.jobId);
  }
  return { cancels, downloads };
}

/** Drop marks older than a week (the exports they are about are long gone). */
export function pruneMarks(storage, now) {
  for (const key of allKeys(storage)) {
    const parsed = parseKey(key);
    if (!parsed || parsed.kind === "job") continue;
    const value = readJson(storage, key);
    const at = value && typeof value.at === "number" ? value.at : 0;
    if (now - at > KEEP_MARKS_MS) storage.removeItem(key);
  }
}

/**
 * A Storage that never throws. Where the browser's refuses a write (quota full, storage
 * disabled), the value is kept in memory instead, so this page still reads back what it wrote
 * (its downloaded and cancel marks keep guarding it); only what other tabs and later visits
 * see degrades. `degraded` tells whether that happened. Removing a key removes it from both.
 * @param {Storage} backing
 */
export function resilientStorage(backing) {
  const overlay = new MemoryStorage();
  const state = { degraded: false };
  const attempt = (work, fallback) => {
    try {
      return work();
    } catch {
      state.degraded = true;
      return fallback;
    }
  };
  return {
    backing, // the browser's own, for telling its `storage` events apart
    get degraded() {
      return state.degraded;
    },
    get length() {
      return allOf().length;
    },
    key(index) {
      return allOf()[index] ?? null;
    },
    getItem(key) {
      const kept = overlay.getItem(key);
      return kept != null ? kept : attempt(() => backing.getItem(key), null);
    },
    setItem(key, value) {
      const written = attempt(() => {
        backing.setItem(key, value);
        return true;
      }, false);
      if (written) overlay.removeItem(key);
      else overlay.setItem(key, value);
    },
    removeItem(key) {
      overlay.removeItem(key);
      attempt(() => backing.removeItem(key), undefined);
    },
  };

  function allOf() {
    const found = new Set(attempt(() => {
      const names = [];
      for (let i = 0; i < backing.length; i += 1) {
        const name = backing.key(i);
        if (name != null) names.push(name);
      }
      return names;
    }, []));
    for (const name of overlay.map.keys()) found.add(name);
    return [...found];
  }
}

/** A Map-backed Storage, for tests and for browsers where localStorage throws. */
export class MemoryStorage {
  constructor() {
    /** @type {Map<string, string>} */
    this.map = new Map();
  }

  get length() {
    return this.map.size;
  }

  key(index) {
    return [...this.map.keys()][index] ?? null;
  }

  getItem(key) {
    return this.map.has(key) ? this.map.get(key) : null;
  }

  setItem(key, value) {
    this.map.set(key, String(value));
  }

  removeItem(key) {
    this.map.delete(key);
  }

  clear() {
    this.map.clear();
  }
}
