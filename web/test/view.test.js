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

describe("the panel's words", () => {
  test("completion warnings are shown as text, with their count", () => {
    const { job } = run([startedHere, { type: "event", event: ev(2, "completed", { warnings: ["img-3.png: 2 polygons skipped", "img-7.png: no cells"] }) }]);
    const shown = jobView(job);
    assert.deepEqual(shown.warnings, ["img-3.png: 2 polygons skipped", "img-7.png: no cells"]);
    assert.equal(shown.warningsTitle, "2 warnings:");
    assert.equal(jobView(job, cs).warningsTitle, "2 upozornění:");
  });

  test("a failed export says why and offers Try again once its options are known", () => {
    const failed = [{ type: "event", event: ev(2, "failed", { error: "The storage is full." }) }];
    const known = run([{ type: "tracked", job: view("pending", 1, { progress: 0, options: { includeDocumentation: true } }), startedHere: true }, ...failed]).job;
    assert.equal(jobView(known).message, "Failed: The storage is full.");
    assert.equal(jobView(known).statusText, "Failed");
    assert.equal(jobView(known).showRetry, true);
    assert.equal(jobView(run([startedHere, ...failed]).job).showRetry, false, "without options there is nothing to repeat");
  });

  test("a cancel's reason reads in the chosen language", () => {
    const { job } = run([startedHere, { type: "event", event: ev(2, "cancelled", { reason: "timeout" }) }]);
    assert.equal(jobView(job).message, "Cancelled (time limit reached)");
    assert.equal(jobView(job, cs).message, "Zrušeno (vypršel časový limit)");
    assert.match(jobView(job, cs).notice, /časový limit/);
  });
});
