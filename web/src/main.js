// The browser app: wires the pure state (state.js) to its effects (HTTP,
// Socket.IO, localStorage, locks, timers) and to the DOM (ui.js).

import { ApiError, createApi, errorText } from "./api.js";
import { Downloader } from "./downloader.js";
import { pickLanguage, saveLanguage, translator } from "./i18n.js";
import { runImport } from "./importer.js";
import { createImportUi } from "./import_ui.js";
import { ANNOTATION_FORMATS, METRICS_FORMATS } from "./options.js";
import * as persist from "./persist.js";
import { connectSocket } from "./socket.js";
import { createState, currentJob, jobsToPoll, persistable, reduce } from "./state.js";
import { createUi } from "./ui.js";

export const CONFIG = {
  pollDisconnectedMs: 2000, //  the socket is down: poll every job's status
  pollConnectedMs: 5000, //     the socket is up: still reconcile
  autoDownloadDelayMs: 1000, // between `completed` and the auto-download (the user may still cancel)
  historyPage: 20, //           exports per page of the history
};

/** @typedef {{key: string, params?: Record<string, any>} | null} Text  a catalogue key and its params */
const text = (key, params = {}) => ({ key, params });

const storage = persist.resilientStorage(openStorage());
let t = translator(pickLanguage(storage, typeof navigator !== "undefined" ? navigator.languages ?? [] : []));
const tabId = randomId();
const api = createApi({ onUnauthorized: () => sessionExpired() });

/** Everything this tab holds in memory. */
const app = {
  state: createState(),
  user: /** @type {{id: string, email: string} | null} */ (null),
  projects: /** @type {any[]} */ ([]),
  projectId: /** @type {string | null} */ (null),
  project: /** @type {any} */ (null),
  history: /** @type {any[] | null} */ (null),
  historyMore: false, // the last page of the history was full: there may be more
  tick: /** @type {any} */ (null), // re-renders every second while an ETA counts down
  formats: { annotations: ANNOTATION_FORMATS.map((name) => ({ name, title: name })), metrics: METRICS_FORMATS.map((name) => ({ name, title: name })) },
  defaults: /** @type {{options: any, controls: any} | null} */ (null), // the server's, for the dialog
  notice: /** @type {Text} */ (null),
  connected: false,
  socket: /** @type {ReturnType<typeof connectSocket> | null} */ (null),
  pollTimer: /** @type {any} */ (null),
  persistedIds: new Set(),
  downloads: /** @type {{jobId: string, kind: string, at: number}[]} */ ([]),
  starting: false,
};

const downloader = new Downloader({
  getState: () => app.state,
  dispatch: (action) => dispatch(action),
  api,
  storage,
  locks: typeof navigator !== "undefined" ? navigator.locks : null,
  trigger: (url, fileName) => ui.triggerDownload(url, fileName),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  now: () => Date.now(),
  delayMs: CONFIG.autoDownloadDelayMs,
  tabId,
  onDownload: (jobId, kind) => app.downloads.push({ jobId, kind, at: Date.now() }),
});

const ui = createUi({
  login: (email, password) => login(email, password),
  logout: () => logout(),
  setLanguage: (language) => setLanguage(language),
  selectProject: (projectId) => selectProject(projectId),
  openExport: () => openExport(),
  startExport: (options, key) => startExport(options, key),
  retry: (jobId) => void retry(jobId),
  cancel: (jobId) => {
    app.notice = null; // the job's own notice (e.g. "finished before it could be cancelled") must show
    dispatch({ type: "cancelClicked", jobId });
  },
  newKey: () => randomId(),
  download: (projectId, jobId, fileName) => manualDownload(projectId, jobId, fileName),
  discard: (projectId, jobId) => discard(projectId, jobId),
  dismiss: (jobId) => dispatch({ type: "dismissed", jobId }),
  refreshHistory: () => refreshHistory(),
  moreHistory: () => void moreHistory(),
  createProject: (name) => createProject(name),
  openImport: () => openImport(),
});

/** The import running in this tab, if any. */
const importing = { stopped: false, projectId: /** @type {string|null} */ (null) };

const importUi = createImportUi({
  start: (request) => void startImport(request),
  stop: () => {
    importing.stopped = true;
  },
  exportNow: () => void openExport(),
});

// -- the one place state changes -------------------------------------------------

const queue = [];
let dispatching = false;

/** Apply an action, then run its effects; actions raised by effects queue up. */
function dispatch(action) {
  queue.push(action);
  if (dispatching) return;
  dispatching = true;
  try {
    while (queue.length) {
      const next = queue.shift();
      const { state, effects } = reduce(app.state, { ...next, now: Date.now() });
      app.state = state;
      for (const effect of effects) runEffect(effect);
    }
  } finally {
    dispatching = false;
  }
  render();
}

function runEffect(effect) {
  switch (effect.type) {
    case "persist":
      savePersisted();
      break;
    case "sync":
      void syncJob(effect.jobId, effect.projectId, effect.afterSeq);
      break;
    case "reconcile":
      void pollJob(effect.jobId, effect.projectId);
      break;
    case "cancel":
      void sendCancel(effect.jobId, effect.projectId);
      break;
    case "shareCancel":
      persist.markCancel(storage, effect.jobId, Date.now());
      break;
    case "autoDownload":
      void downloader.schedule(effect.jobId, effect.projectId);
      break;
    case "historyChanged":
      if (effect.projectId === app.projectId) scheduleHistoryRefresh();
      break;
    case "toast":
      // An export of this user ended: a slot is free, so the 429 notice no longer holds.
      if (app.notice?.key.startsWith("notice.rate-limited")) app.notice = null;
      showToast(effect);
      break;
    default:
      console.warn("unknown effect", effect);
  }
}

function savePersisted() {
  if (!app.user) return;
  const entries = persistable(app.state);
  const known = new Set([...app.persistedIds, ...Object.keys(app.state.jobs)]);
  persist.saveJobs(storage, app.user.id, entries, known);
  app.persistedIds = new Set(entries.map((entry) => entry.jobId));
}

// -- effects -------------------------------------------------------------------------

async function syncJob(jobId, projectId, afterSeq) {
  try {
    const body = await api.events(projectId, jobId, afterSeq);
    dispatch({ type: "eventsFetched", jobId, events: body?.events ?? [] });
  } catch (error) {
    dispatch({ type: "syncFailed", jobId });
    if (error instanceof ApiError && error.status === 404) dispatch({ type: "jobLost", jobId });
  }
}

async function pollJob(jobId, projectId) {
  try {
    const job = await api.status(projectId, jobId);
    dispatch({ type: "snapshot", job });
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) dispatch({ type: "jobLost", jobId });
  }
}

/**
 * Cancel over the socket while it is up: its acknowledgement carries the server's answer, and a
 * completion that won the race is an answer there, not a failed request the browser logs. Over
 * HTTP when the socket is down or does not answer (a second cancel of the same job is harmless).
 */
async function sendCancel(jobId, projectId) {
  const answer = await app.socket?.cancel(jobId, projectId);
  if (answer?.success) {
    dispatch({ type: "cancelSucceeded", jobId, job: answer.job });
    return;
  }
  if (answer?.code === "CONFLICT" && answer.job) {
    dispatch({ type: "cancelConflict", jobId, job: answer.job });
    return;
  }
  if (answer?.code === "NOT_FOUND") {
    dispatch({ type: "cancelFailed", jobId, error: t("notice.not-found") });
    dispatch({ type: "jobLost", jobId });
    return;
  }
  if (answer && typeof answer.error === "string") {
    dispatch({ type: "cancelFailed", jobId, error: answer.error });
    return;
  }
  try {
    const body = await api.cancel(projectId, jobId);
    dispatch({ type: "cancelSucceeded", jobId, job: body?.job });
  } catch (error) {
    if (error instanceof ApiError && error.status === 409 && error.body?.job) {
      dispatch({ type: "cancelConflict", jobId, job: error.body.job });
    } else if (error instanceof ApiError && error.status === 404) {
      dispatch({ type: "cancelFailed", jobId, error: t("notice.not-found") });
      dispatch({ type: "jobLost", jobId });
    } else {
      dispatch({ type: "cancelFailed", jobId, error: errorText(error, t) });
    }
  }
}

async function manualDownload(projectId, jobId, fileName) {
  app.notice = null;
  const result = await downloader.manual(projectId, jobId, fileName);
  if (!result.ok) {
    const tracked = Boolean(app.state.jobs[jobId]);
    if (result.reason === "gone") {
      if (!tracked) app.notice = text("notice.gone");
      scheduleHistoryRefresh();
    } else {
      app.notice = text("notice.download-failed", { error: result.message || t("notice.request-failed") });
    }
  }
  render();
}

async function discard(projectId, jobId) {
  app.notice = null;
  try {
    await api.discard(projectId, jobId);
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 404)) {
      app.notice = text("notice.discard-failed", { error: errorText(error, t) });
      render();
      return;
    }
  }
  if (app.state.jobs[jobId]) dispatch({ type: "discarded", jobId });
  app.history = (app.history ?? []).filter((row) => row.id !== jobId);
  render();
  scheduleHistoryRefresh();
}

// -- polling ---------------------------------------------------------------------------

function schedulePoll() {
  clearTimeout(app.pollTimer);
  if (!app.user) return;
  const interval = app.connected ? CONFIG.pollConnectedMs : CONFIG.pollDisconnectedMs;
  app.pollTimer = setTimeout(async () => {
    await Promise.all(jobsToPoll(app.state).map((job) => pollJob(job.jobId, job.projectId)));
    schedulePoll();
  }, interval);
}

function onConnection(connected) {
  const changed = connected !== app.connected;
  app.connected = connected;
  if (connected && changed) {
    // Whatever was missed while the socket was down comes from the store.
    for (const job of jobsToPoll(app.state)) void syncJob(job.jobId, job.projectId, job.seq);
  }
  if (changed) schedulePoll();
  render();
}

// -- session -----------------------------------------------------------------------------

async function boot() {
  ui.bind();
  importUi.bind();
  ui.setTranslator(t);
  importUi.setTranslator(t);
  window.addEventListener("storage", onStorage);
  window.addEventListener("hashchange", () => {
    const id = projectFromHash();
    if (app.user && id && id !== app.projectId) void selectProject(id);
  });
  try {
    const body = await api.session();
    if (body?.user) await enter(body.user);
    else ui.showLogin(null);
  } catch (error) {
    ui.showLogin(error instanceof ApiError && error.status !== 0 ? errorText(error, t) : null);
  }
}

function setLanguage(language) {
  saveLanguage(storage, language); // a full or disabled storage: the choice lasts for this page
  t = translator(language);
  ui.setTranslator(t);
  importUi.setTranslator(t);
}

async function login(email, password) {
  try {
    const body = await api.login(email, password);
    await enter(body.user);
    return null;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return error.message;
    if (error instanceof ApiError && error.status === 400) return text("login.invalid");
    return text("login.failed", { error: errorText(error, t) });
  }
}

async function enter(user) {
  app.user = user;
  app.state = createState();
  persist.pruneMarks(storage, Date.now());
  ui.showApp(user);
  // What this browser knows: cancel intents, downloads, unfinished jobs.
  const marks = persist.loadMarks(storage);
  for (const jobId of marks.cancels) dispatch({ type: "cancelShared", jobId });
  for (const jobId of marks.downloads) dispatch({ type: "downloaded", jobId });
  const restored = persist.loadJobs(storage, user.id);
  for (const entry of restored) dispatch({ type: "restored", entry });
  app.persistedIds = new Set(restored.map((entry) => entry.jobId));

  app.socket = connectSocket({
    onEvent: (payload) => dispatch({ type: "event", event: payload }),
    onConnection,
    onRefused: () => void checkSession(),
  });
  schedulePoll();
  void loadFormats();
  void loadDefaults();
  await loadProjects();
  const wanted = projectFromHash() ?? restored[0]?.projectId ?? storage.getItem(lastProjectKey());
  if (wanted && app.projects.some((project) => project.id === wanted)) await selectProject(wanted);
  else if (app.projects.length === 1) await selectProject(app.projects[0].id);
  render();
}

async function logout() {
  try {
    await api.logout();
  } catch {
    /* the cookie is cleared by the server; offline, we still leave */
  }
  leave(null);
}

function leave(message) {
  app.socket?.close();
  app.socket = null;
  clearTimeout(app.pollTimer);
  app.user = null;
  app.projectId = null;
  app.project = null;
  app.history = null;
  app.notice = null;
  app.connected = false;
  dispatch({ type: "forget" });
  ui.showLogin(message); // a pending auto-download finds its job forgotten and stops
}

function sessionExpired() {
  if (app.user) leave(text("session.ended"));
}

async function checkSession() {
  try {
    const body = await api.session();
    if (!body?.user) sessionExpired();
  } catch {
    /* unreachable: the socket's reconnection and the polls carry on */
  }
}

function onStorage(event) {
  if (!app.user || event.storageArea !== storage.backing) return;
  const parsed = persist.parseKey(event.key);
  if (!parsed || event.newValue == null) return;
  if (parsed.kind === "cancel") dispatch({ type: "cancelShared", jobId: parsed.jobId });
  else if (parsed.kind === "downloaded") dispatch({ type: "downloaded", jobId: parsed.jobId });
  else if (parsed.kind === "job" && parsed.userId === app.user.id) {
    try {
      dispatch({ type: "restored", entry: JSON.parse(event.newValue) });
    } catch {
      /* not ours to fix */
    }
  }
}

// -- projects, exports, history --------------------------------------------------------

async function loadProjects() {
  try {
    const body = await api.projects();
    app.projects = body.projects ?? [];
  } catch (error) {
    app.projects = [];
    app.notice = text("notice.projects-failed", { error: errorText(error, t) });
  }
  render();
}

async function loadFormats() {
  try {
    const body = await api.formats();
    if (Array.isArray(body?.annotations) && Array.isArray(body?.metrics)) app.formats = { annotations: body.annotations, metrics: body.metrics };
  } catch {
    /* the built-in list stands */
  }
}

async function selectProject(projectId) {
  if (app.projectId !== projectId) {
    app.notice = null;
    app.history = null;
    app.historyMore = false;
    app.project = app.projects.find((project) => project.id === projectId) ?? null;
  }
  app.projectId = projectId;
  storage.setItem(lastProjectKey(), projectId); // resilient: a full storage only forgets it
  if (projectFromHash() !== projectId) history.replaceState(null, "", `#/projects/${encodeURIComponent(projectId)}`);
  render();
  await Promise.all([loadProject(projectId), refreshHistory()]);
}

async function loadProject(projectId) {
  try {
    const project = await api.project(projectId);
    if (app.projectId === projectId) app.project = project;
  } catch (error) {
    if (app.projectId === projectId) app.notice = text("notice.project-failed", { error: errorText(error, t) });
  }
  render();
}

let historyTimer = null;
function scheduleHistoryRefresh() {
  clearTimeout(historyTimer);
  historyTimer = setTimeout(() => void refreshHistory(), 150);
}

/** The first page again; pages shown below it (after "Show more") stay, without duplicates. */
async function refreshHistory() {
  const projectId = app.projectId;
  if (!projectId) return;
  try {
    const body = await api.history(projectId, CONFIG.historyPage, 0);
    if (app.projectId !== projectId) return;
    const first = body.jobs ?? [];
    const older = (app.history ?? []).slice(CONFIG.historyPage);
    app.history = unique([...first, ...older]);
    if (app.history.length <= CONFIG.historyPage) app.historyMore = first.length === CONFIG.historyPage;
    // An export still running (started elsewhere, or before this browser
    // lost its storage) is followed live, without auto-download.
    for (const job of first) {
      if ((job.status === "pending" || job.status === "processing") && !app.state.jobs[job.id]) {
        dispatch({ type: "tracked", job, startedHere: false });
      }
    }
  } catch (error) {
    if (app.projectId === projectId && !(error instanceof ApiError && error.status === 401)) {
      app.notice = text("notice.history-failed", { error: errorText(error, t) });
    }
  }
  render();
}

/** The next page of the history, after the rows shown. */
async function moreHistory() {
  const projectId = app.projectId;
  if (!projectId || !app.history) return;
  try {
    const body = await api.history(projectId, CONFIG.historyPage, app.history.length);
    if (app.projectId !== projectId) return;
    const page = body.jobs ?? [];
    app.history = unique([...app.history, ...page]);
    app.historyMore = page.length === CONFIG.historyPage;
  } catch (error) {
    if (app.projectId === projectId) app.notice = text("notice.history-failed", { error: errorText(error, t) });
  }
  render();
}

function unique(rows) {
  const seen = new Set();
  return rows.filter((row) => !seen.has(row.id) && seen.add(row.id));
}

async function openExport() {
  if (!app.projectId) return;
  if (!app.defaults) await loadDefaults();
  if (!app.defaults) return; // the notice says why
  ui.openDialog({ project: app.project, formats: app.formats, defaults: app.defaults, key: randomId() });
}

async function loadDefaults() {
  try {
    const body = await api.defaults();
    if (body?.options && body?.controls) app.defaults = body;
  } catch (error) {
    app.notice = text("notice.options-failed", { error: errorText(error, t) });
    render();
  }
}

/**
 * A new project, then straight to importing into it.
 * @returns {Promise<Text>} the problem, or null
 */
async function createProject(name) {
  if (!name.trim()) return text("error.projectName");
  try {
    const project = await api.createProject(name.trim());
    await loadProjects();
    await selectProject(project.id);
    openImport();
    return null;
  } catch (error) {
    return text("notice.project-create-failed", { error: errorText(error, t) });
  }
}

function openImport() {
  const project = app.project ?? app.projects.find((p) => p.id === app.projectId);
  if (!project) return;
  importUi.open(project.name ?? "");
}

/** Import the chosen files into the selected project, one image per request (importer.js). */
async function startImport({ rows, coco, className }) {
  const projectId = app.projectId;
  if (!projectId) return;
  importing.stopped = false;
  importing.projectId = projectId;
  const send = async (row, onProgress) => {
    const form = new FormData();
    form.append("files", row.file, row.file.name);
    if (coco) form.append("coco", coco, coco.name);
    for (const mask of row.masks) form.append("masks", mask, mask.name);
    if (row.masks.length) form.append("className", className);
    const answer = await api.uploadImages(projectId, form, onProgress);
    return answer.ok ? answer : { ...answer, message: errorText(answer.error, t) };
  };
  const done = await runImport(rows, send, (next) => importUi.progress(next, false), () => importing.stopped);
  importUi.progress(done, true);
  await loadProjects();
  if (app.projectId === projectId) await loadProject(projectId);
}

/** "Try again" on a failed export: the same options, as a new export. */
async function retry(jobId) {
  const job = app.state.jobs[jobId];
  if (!job?.options || app.projectId !== job.projectId) return;
  if (!app.defaults) await loadDefaults();
  await startExport(job.options, randomId());
}

/**
 * Start an export with the dialog's options. The dialog closes (`close`) once it started, and on
 * the refusals shown on the page (429, a vanished project); otherwise it shows `error`.
 * @returns {Promise<{close: boolean, error?: string, keepKey?: boolean}>}
 */
async function startExport(options, idempotencyKey) {
  const projectId = app.projectId;
  if (!projectId || app.starting) return { close: false, error: null, keepKey: true };
  app.starting = true;
  app.notice = null;
  try {
    const job = await api.startExport(projectId, options, idempotencyKey);
    dispatch({ type: "tracked", job, startedHere: true });
    scheduleHistoryRefresh();
    return { close: true };
  } catch (error) {
    if (error instanceof ApiError && error.status === 429) {
      const wait = Number.isFinite(error.retryAfter) && error.retryAfter > 0;
      app.notice = text(wait ? "notice.rate-limited-wait" : "notice.rate-limited", { error: error.message, seconds: error.retryAfter });
      void refreshHistory();
      return { close: true };
    }
    if (error instanceof ApiError && error.status === 404) {
      app.notice = text("notice.project-gone");
      return { close: true };
    }
    const network = error instanceof ApiError && error.status === 0;
    return { close: false, error: error instanceof ApiError ? errorText(error, t) : text("notice.start-failed"), keepKey: network };
  } finally {
    app.starting = false;
    render();
  }
}

// -- rendering ----------------------------------------------------------------------------

function render() {
  if (!app.user) return;
  const job = app.projectId ? currentJob(app.state, app.projectId) : null;
  keepTicking(job);
  ui.render({
    user: app.user,
    connected: app.connected,
    projects: app.projects,
    projectId: app.projectId,
    project: app.project,
    job,
    history: app.history,
    historyMore: app.historyMore,
    state: app.state,
    notice: app.notice,
    starting: app.starting,
    now: Date.now(),
  });
}

/** While the shown job has an ETA, redraw every second so it counts down between events. */
function keepTicking(job) {
  const counting = Boolean(job && !job.terminal && job.etaSeconds != null);
  if (counting && !app.tick) app.tick = setInterval(render, 1000);
  if (!counting && app.tick) {
    clearInterval(app.tick);
    app.tick = null;
  }
}

/** A toast for an export that just finished, was cancelled or failed. */
function showToast({ kind, jobId }) {
  const job = app.state.jobs[jobId];
  if (!job) return;
  if (kind === "completed") ui.toast(kind, text("toast.completed", { file: job.fileName ?? "" }));
  else if (kind === "failed") ui.toast(kind, text("toast.failed", { error: job.error || t("job.unknownError") }));
  else if (kind === "cancelled") ui.toast(kind, text("toast.cancelled"));
}

// -- helpers --------------------------------------------------------------------------------

function projectFromHash() {
  const match = /^#\/projects\/([^/]+)$/.exec(location.hash);
  return match ? decodeURIComponent(match[1]) : null;
}

function lastProjectKey() {
  return `${persist.PREFIX}lastProject:${app.user?.id ?? ""}`;
}

function randomId() {
  if (globalThis.crypto?.randomUUID) return globalThis.crypto.randomUUID();
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** localStorage, or a memory stand-in where it is disabled (a full one is handled by resilientStorage). */
function openStorage() {
  try {
    const local = window.localStorage;
    local.getItem(`${persist.PREFIX}probe`);
    return local;
  } catch {
    return new persist.MemoryStorage();
  }
}

// Read-only debug view for people and browser tests, plus one test hook:
// `receive(payload)` feeds a socket event to this tab, as if the server had
// sent it (it cannot change anything on the server).
Object.defineProperty(window, "__exportd", {
  value: Object.freeze({
    get state() {
      return JSON.parse(JSON.stringify(app.state));
    },
    get connected() {
      return app.connected;
    },
    get downloads() {
      return app.downloads.map((entry) => ({ ...entry }));
    },
    get projectId() {
      return app.projectId;
    },
    config: Object.freeze({ ...CONFIG }),
    receive: (payload) => dispatch({ type: "event", event: payload }),
    download: (projectId, jobId) => manualDownload(projectId, jobId, null),
  }),
});

void boot();
