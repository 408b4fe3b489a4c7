import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  hasCancel, isDownloaded, keys, loadJobs, loadMarks, markCancel, markDownloaded, MemoryStorage, parseKey, pruneMarks, saveJobs,
} from "../src/persist.js";

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
