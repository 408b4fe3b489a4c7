import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { downloadUrl, MemoryLocks } from "../src/downloader.js";
import { isDownloaded, MemoryStorage, markDownloaded } from "../src/persist.js";
import { translator } from "../src/i18n.js";
import { noticeText } from "../src/view.js";
import { createTab, ev, fakeApi, httpError, JOB, PROJECT, view } from "./helpers.js";

const said = (notice) => noticeText(notice, translator("en"));

const startedHere = { type: "tracked", job: view("pending", 1, { progress: 0 }), startedHere: true };
const completedEvents = [
  { type: "event", event: ev(2, "started") },
  { type: "event", event: ev(3, "progress") },
  { type: "event", event: ev(4, "completed") },
];

function browser({ api = fakeApi(), locks = new MemoryLocks(), delayMs = 5 } = {}) {
  return { storage: new MemoryStorage(), locks, api, downloads: [], delayMs };
}

function play(tab, actions) {
  for (const action of actions) tab.dispatch(action);
}

describe("auto-download", () => {
  test("completed and not cancelled: exactly one download, through a token URL", async () => {
    const shared = browser();
    const tab = createTab({ ...shared, name: "a" });
    play(tab, [startedHere, ...completedEvents]);
    await tab.settle();
    assert.equal(shared.downloads.length, 1);
    assert.equal(shared.downloads[0].url, downloadUrl(PROJECT, JOB, "t"));
    assert.equal(shared.downloads[0].fileName, "Demo_j-1.zip");
    assert.equal(shared.api.calls.status, 1, "the server's status is re-checked right before downloading");
    assert.ok(isDownloaded(shared.storage, JOB));
    assert.equal(tab.state.jobs[JOB].download, "done");
  });

  test("overlapping attempts in one tab give one download", async () => {
    const shared = browser();
    const tab = createTab({ ...shared, name: "a" });
    play(tab, [startedHere, ...completedEvents]);
    const attempts = [tab.downloader.schedule(JOB, PROJECT), tab.downloader.schedule(JOB, PROJECT)];
    await Promise.all(attempts);
    await tab.settle();
    assert.equal(shared.downloads.length, 1);
    const later = await tab.downloader.schedule(JOB, PROJECT);
    assert.equal(later, "already-downloaded");
    assert.equal(shared.downloads.length, 1);
  });

  test("two tabs sharing storage and locks: one download between them", async () => {
    const shared = browser();
    const a = createTab({ ...shared, name: "a" });
    const b = createTab({ ...shared, name: "b" });
    // Both tabs follow the job (b learned of it from a's localStorage entry) and both see `completed`.
    play(a, [startedHere, ...completedEvents]);
    play(b, [{ type: "restored", entry: { jobId: JOB, projectId: PROJECT, status: "pending", startedHere: true } },
      { type: "snapshot", job: view("pending", 1) }, ...completedEvents]);
    await Promise.all([a.settle(), b.settle()]);
    assert.equal(shared.downloads.length, 1);
    assert.equal(b.state.jobs[JOB].download, "done", "the other tab learns it was downloaded");
    assert.equal(a.state.jobs[JOB].download, "done");
  });

  test("two tabs without navigator.locks: the localStorage claim still gives one download", async () => {
    const shared = browser({ locks: null });
    const a = createTab({ ...shared, name: "a" });
    const b = createTab({ ...shared, name: "b" });
    play(a, [startedHere, ...completedEvents]);
    play(b, [startedHere, ...completedEvents]);
    await Promise.all([a.settle(), b.settle()]);
    assert.equal(shared.downloads.length, 1);
  });

  test("a job downloaded before a reload is not downloaded again", async () => {
    const shared = browser();
    markDownloaded(shared.storage, JOB, Date.now());
    const reloaded = createTab({ ...shared, name: "reloaded" });
    // The app loads the marks first; even without them the lock-held check catches it.
    play(reloaded, [{ type: "restored", entry: { jobId: JOB, projectId: PROJECT, status: "processing", startedHere: true } }, { type: "snapshot", job: view("completed", 4) }]);
    await reloaded.settle();
    assert.equal(shared.downloads.length, 0);
    assert.equal(reloaded.state.jobs[JOB].download, "done");
  });

  test("cancel during the auto-download delay: aborted before anything is fetched", async () => {
    const shared = browser({ delayMs: 30 });
    const tab = createTab({ ...shared, name: "a" });
    play(tab, [startedHere, ...completedEvents]);
    tab.dispatch({ type: "cancelClicked", jobId: JOB });
    await tab.settle();
    assert.equal(shared.downloads.length, 0);
    assert.equal(shared.api.calls.status, 0);
    assert.equal(shared.api.calls.token, 0);
  });

  test("a cancel from another tab during the delay aborts it too", async () => {
    const shared = browser({ delayMs: 30 });
    const tab = createTab({ ...shared, name: "a" });
    play(tab, [startedHere, ...completedEvents]);
    setTimeout(() => tab.dispatch({ type: "cancelShared", jobId: JOB }), 5);
    await tab.settle();
    assert.equal(shared.downloads.length, 0);
  });

  test("the job became cancelled on the server during the delay: aborted, and said so", async () => {
    const shared = browser({ api: fakeApi({ status: () => view("cancelled", 5) }) });
    const tab = createTab({ ...shared, name: "a" });
    play(tab, [startedHere, ...completedEvents]);
    await tab.settle();
    assert.equal(shared.downloads.length, 0);
    assert.equal(shared.api.calls.token, 0);
    assert.equal(tab.state.jobs[JOB].download, "aborted");
    assert.match(said(tab.state.jobs[JOB].notice), /cancelled before it could be downloaded/);
    assert.equal(isDownloaded(shared.storage, JOB), false);
  });

  test("a `completed` event alone is not enough: the server still says processing", async () => {
    const shared = browser({ api: fakeApi({ status: () => view("processing", 3) }) });
    const tab = createTab({ ...shared, name: "a" });
    play(tab, [startedHere, ...completedEvents]);
    await tab.settle();
    assert.equal(shared.downloads.length, 0);
  });

  test("the server cannot be reached for the re-check: no download", async () => {
    const shared = browser({ api: fakeApi({ status: () => { throw httpError(0); } }) });
    const tab = createTab({ ...shared, name: "a" });
    play(tab, [startedHere, ...completedEvents]);
    await tab.settle();
    assert.equal(shared.downloads.length, 0);
    assert.equal(isDownloaded(shared.storage, JOB), false);
  });

  test("cancel clicked while the status is being re-checked: no download", async () => {
    const api = fakeApi();
    const shared = browser({ api });
    const tab = createTab({ ...shared, name: "a" });
    api.statusOf = () => {
      tab.dispatch({ type: "cancelClicked", jobId: JOB });
      return view("completed", 4);
    };
    play(tab, [startedHere, ...completedEvents]);
    await tab.settle();
    assert.equal(shared.downloads.length, 0);
    assert.equal(api.calls.token, 0);
  });

  test("the token is refused with 410: no download, 'no longer available'", async () => {
    const shared = browser({ api: fakeApi({ token: () => { throw httpError(410, "gone"); } }) });
    const tab = createTab({ ...shared, name: "a" });
    play(tab, [startedHere, ...completedEvents]);
    await tab.settle();
    assert.equal(shared.downloads.length, 0);
    assert.match(said(tab.state.jobs[JOB].notice), /no longer available/);
  });

  test("after a cancel and a late `completed`, nothing reaches the downloader", async () => {
    const shared = browser();
    const tab = createTab({ ...shared, name: "a" });
    play(tab, [startedHere, { type: "event", event: ev(2, "started") }, { type: "cancelClicked", jobId: JOB },
      { type: "cancelSucceeded", jobId: JOB, job: view("cancelled", 3) }, { type: "event", event: ev(4, "completed") }]);
    await tab.settle();
    assert.equal(shared.downloads.length, 0);
    assert.equal(shared.api.calls.status, 0);
  });
});

describe("manual download", () => {
  test("of a cancelled job: refused, 'no longer available'", async () => {
    const shared = browser({ api: fakeApi({ token: () => { throw httpError(410, "The export was cancelled and is no longer available."); } }) });
    const tab = createTab({ ...shared, name: "a" });
    play(tab, [startedHere, { type: "cancelClicked", jobId: JOB }, { type: "cancelConflict", jobId: JOB, job: view("completed", 4) }]);
    const result = await tab.downloader.manual(PROJECT, JOB, null);
    assert.deepEqual(result, { ok: false, reason: "gone" });
    assert.equal(shared.downloads.length, 0);
    assert.match(said(tab.state.jobs[JOB].notice), /no longer available/);
  });

  test("of the finished-before-cancel offer: one download, and no auto-download after it", async () => {
    const shared = browser();
    const tab = createTab({ ...shared, name: "a" });
    play(tab, [startedHere, { type: "cancelClicked", jobId: JOB }, { type: "cancelConflict", jobId: JOB, job: view("completed", 4) }]);
    const result = await tab.downloader.manual(PROJECT, JOB, "x.zip");
    assert.deepEqual(result, { ok: true });
    await tab.settle();
    assert.equal(shared.downloads.length, 1);
    assert.ok(isDownloaded(shared.storage, JOB));
  });

  test("of a job that is not ready: reported, not downloaded", async () => {
    const shared = browser({ api: fakeApi({ token: () => { throw httpError(409, "The export is processing; there is nothing to download."); } }) });
    const tab = createTab({ ...shared, name: "a" });
    const result = await tab.downloader.manual(PROJECT, JOB, null);
    assert.equal(result.reason, "not-ready");
    assert.equal(shared.downloads.length, 0);
  });
});

describe("MemoryLocks", () => {
  test("runs holders of one name one after the other", async () => {
    const locks = new MemoryLocks();
    const order = [];
    await Promise.all([
      locks.request("x", { mode: "exclusive" }, async () => { order.push("a1"); await new Promise((r) => setTimeout(r, 5)); order.push("a2"); }),
      locks.request("x", async () => { order.push("b"); }),
    ]);
    assert.deepEqual(order, ["a1", "a2", "b"]);
  });
});
