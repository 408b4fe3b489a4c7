import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  hasCancel, isDownloaded, keys, loadJobs, loadMarks, markCancel, markDownloaded, MemoryStorage, parseKey, pruneMarks, removeJob,
  resilientStorage, saveJobs,
} from "../src/persist.js";
import { createTab, ev, fakeApi, view } from "./helpers.js";

const startedHere = { type: "tracked", job: view("pending", 1, { progress: 0 }), startedHere: true };
const completed = [{ type: "event", event: ev(2, "started") }, { type: "event", event: ev(3, "completed") }];

const entry = (jobId, extra = {}) => ({ jobId, projectId: "p", status: "processing", progress: 10, startedHere: true, ...extra });

describe("persisted jobs", () => {
  test("are kept per user and per job", () => {
    const storage = new MemoryStorage();
    saveJobs(storage, "u1", [entry("a"), entry("b")], ["a", "b"]);
    saveJobs(storage, "u2", [entry("c")], ["c"]);
    assert.deepEqual(loadJobs(storage, "u1").map((e) => e.jobId).sort(), ["a", "b"]);
    assert.deepEqual(loadJobs(storage, "u2").map((e) => e.jobId), ["c"]);
  });

  test("a job no longer persistable is removed; another tab's jobs are left alone", () => {
    const storage = new MemoryStorage();
    saveJobs(storage, "u1", [entry("mine"), entry("theirs")], ["mine", "theirs"]);
    saveJobs(storage, "u1", [], ["mine"]);
    assert.deepEqual(loadJobs(storage, "u1").map((e) => e.jobId), ["theirs"]);
  });

  test("garbage in storage is skipped", () => {
    const storage = new MemoryStorage();
    storage.setItem(keys.job("u1", "x"), "{not json");
    storage.setItem(keys.job("u1", "y"), JSON.stringify({ nope: 1 }));
    assert.deepEqual(loadJobs(storage, "u1"), []);
  });
});

describe("marks", () => {
  test("cancel and download marks are found again after a reload", () => {
    const storage = new MemoryStorage();
    markCancel(storage, "a", Date.now());
    markDownloaded(storage, "b", Date.now());
    assert.ok(hasCancel(storage, "a"));
    assert.ok(isDownloaded(storage, "b"));
    assert.deepEqual(loadMarks(storage), { cancels: ["a"], downloads: ["b"] });
  });

  test("old marks are pruned, recent ones kept", () => {
    const storage = new MemoryStorage();
    const now = Date.now();
    markDownloaded(storage, "old", now - 8 * 24 * 3600 * 1000);
    markDownloaded(storage, "new", now - 1000);
    pruneMarks(storage, now);
    assert.equal(isDownloaded(storage, "old"), false);
    assert.equal(isDownloaded(storage, "new"), true);
  });

  test("storage keys are understood for the other tabs' storage events", () => {
    assert.deepEqual(parseKey(keys.cancel("j")), { kind: "cancel", jobId: "j" });
    assert.deepEqual(parseKey(keys.downloaded("j")), { kind: "downloaded", jobId: "j" });
    assert.deepEqual(parseKey(keys.job("u", "j")), { kind: "job", userId: "u", jobId: "j" });
    assert.equal(parseKey("something-else"), null);
    assert.equal(parseKey(null), null);
  });
});

describe("a full or disabled localStorage", () => {
  /** localStorage with its quota used up: reads work, every write throws. */
  class FullStorage extends MemoryStorage {
    setItem() {
      throw Object.assign(new Error("The quota has been exceeded."), { name: "QuotaExceededError" });
    }
  }
  /** localStorage switched off: every call throws. */
  const disabled = {
    get length() { throw new Error("SecurityError"); },
    key() { throw new Error("SecurityError"); },
    getItem() { throw new Error("SecurityError"); },
    setItem() { throw new Error("SecurityError"); },
    removeItem() { throw new Error("SecurityError"); },
  };

  test("never throws, and this page still reads back what it wrote", () => {
    for (const backing of [new FullStorage(), disabled]) {
      const storage = resilientStorage(backing);
      saveJobs(storage, "u1", [entry("a")], ["a"]);
      markCancel(storage, "a", Date.now());
      markDownloaded(storage, "b", Date.now());
      assert.deepEqual(loadJobs(storage, "u1").map((e) => e.jobId), ["a"]);
      assert.ok(hasCancel(storage, "a") && isDownloaded(storage, "b"));
      assert.deepEqual(loadMarks(storage), { cancels: ["a"], downloads: ["b"] });
      assert.equal(storage.degraded, true);
      removeJob(storage, "u1", "a");
      assert.deepEqual(loadJobs(storage, "u1"), []);
    }
  });

  test("what the browser did store stays readable, and a write that works again is used", () => {
    const backing = new FullStorage();
    MemoryStorage.prototype.setItem.call(backing, keys.downloaded("old"), JSON.stringify({ at: 1 }));
    const storage = resilientStorage(backing);
    assert.ok(isDownloaded(storage, "old"));
    const healthy = resilientStorage(new MemoryStorage());
    markDownloaded(healthy, "x", 1);
    assert.ok(isDownloaded(healthy.backing, "x"));
    assert.equal(healthy.degraded, false);
  });

  test("the auto-download still happens once, and a cancel still stops it", async () => {
    const storage = resilientStorage(new FullStorage());
    const shared = { storage, locks: null, api: fakeApi(), downloads: [], delayMs: 5 }; // no Web Locks: the claim in storage
    const first = createTab({ ...shared, name: "a" });
    for (const action of [startedHere, ...completed]) first.dispatch(action);
    await first.settle();
    const again = createTab({ ...shared, name: "b" }); // a second tab of this page's storage
    for (const action of [startedHere, ...completed]) again.dispatch(action);
    await again.settle();
    assert.equal(shared.downloads.length, 1);

    const cancelled = createTab({ ...shared, name: "c" });
    const other = "j-2";
    cancelled.dispatch({ type: "tracked", job: view("pending", 1, { progress: 0 }, other), startedHere: true });
    cancelled.dispatch({ type: "event", event: ev(2, "started", {}, other) });
    cancelled.dispatch({ type: "cancelClicked", jobId: other });
    cancelled.dispatch({ type: "cancelConflict", jobId: other, job: view("completed", 3, {}, other) });
    await cancelled.settle();
    assert.equal(shared.downloads.length, 1, "a job the user asked to cancel is not downloaded");
    assert.equal(cancelled.state.jobs[other].offer, "finished-before-cancel");
  });
});
