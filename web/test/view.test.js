import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { translator } from "../src/i18n.js";
import { formatBytes, formatEta, jobView as viewIn, remainingSeconds } from "../src/view.js";
import { ev, JOB, run, view } from "./helpers.js";

const en = translator("en");
const cs = translator("cs");
const jobView = (job, t = en) => viewIn(job, t, job.etaAt ?? 0);

const startedHere = { type: "tracked", job: view("pending", 1, { progress: 0 }), startedHere: true };

describe("the panel's view of a job", () => {
  test("running: the status word (capitalised), stage, message, ETA, and a cancel button", () => {
    const { job } = run([startedHere, { type: "event", event: ev(2, "started") }, { type: "event", event: ev(3, "progress") }]);
    const shown = jobView(job);
    assert.equal(shown.status, "processing");
    assert.equal(shown.statusText, "Processing");
    assert.equal(jobView(job, cs).statusText, "Zpracovává se");
    assert.equal(shown.progress, 30);
    assert.equal(shown.message, "Images 3/10 · image 3 · about 3 s left");
    assert.equal(shown.showCancel, true);
    assert.equal(shown.showDownload, false);
  });

  test("cancelling: still the server's status, with the button kept (clicks are deduplicated)", () => {
    const { job } = run([startedHere, { type: "event", event: ev(2, "started") }, { type: "cancelClicked", jobId: JOB }]);
    const shown = jobView(job);
    assert.match(shown.statusText, /^Processing · cancelling/);
    assert.equal(shown.showCancel, true);
    assert.equal(shown.cancelBusy, true);
  });

  test("finished before it could be cancelled: the notice, download and discard", () => {
    const { job } = run([startedHere, { type: "cancelClicked", jobId: JOB }, { type: "cancelConflict", jobId: JOB, job: view("completed", 4) }]);
    const shown = jobView(job);
    assert.match(shown.notice, /finished before it could be cancelled/);
    assert.equal(shown.showDownload, true);
    assert.equal(shown.showDiscard, true);
    assert.equal(shown.showCancel, false);
    assert.equal(shown.progress, 100);
  });

  test("completed here: no download button while the auto-download is pending; cancel still possible", () => {
    const { job } = run([startedHere, { type: "event", event: ev(2, "completed") }]);
    const shown = jobView(job);
    assert.equal(shown.showDownload, false);
    assert.equal(shown.showCancel, true);
    assert.match(shown.message, /download starts in a moment/);
  });

  test("a restored job says it is reconnecting", () => {
    const { job } = run([{ type: "restored", entry: { jobId: JOB, projectId: "p-1", status: "processing", progress: 55, startedHere: true } }]);
    assert.match(jobView(job).statusText, /Processing · reconnecting/);
    assert.equal(jobView(job).progress, 55);
  });

  test("sizes and ETAs read well", () => {
    assert.equal(formatBytes(512), "512 B");
    assert.equal(formatBytes(8045230), "7.7 MB");
    assert.equal(formatEta(0.4, en), "less than a second left");
    assert.equal(formatEta(75, en), "about 1 min 15 s left");
    assert.equal(formatEta(75, cs), "zbývá asi 1 min 15 s");
    assert.equal(formatEta(null, en), "");
  });
});
