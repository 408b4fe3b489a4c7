import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { CONCURRENCY, planImport, runImport, settleRow, summary } from "../src/importer.js";

const file = (name) => ({ name, size: 10 });

describe("importing from the browser", () => {
  test("label images go with the image of their stem, Cellpose's suffixes included", () => {
    const { rows, unmatched } = planImport(
      [file("a.png"), file("b.tif"), file("c_masks.png")],
      [file("a_cp_masks.png"), file("b.tif"), file("c_masks_masks.png"), file("zzz_masks.png")],
    );
    assert.deepEqual(rows.map((row) => row.masks.map((m) => m.name)), [["a_cp_masks.png"], ["b.tif"], ["c_masks_masks.png"]]);
    assert.deepEqual(unmatched.map((m) => m.name), ["zzz_masks.png"]);
    assert.ok(rows.every((row) => row.status === "waiting"));
  });

  test("each answer becomes the file's status: stored with its cells, skipped, rejected with the reason, failed", () => {
    const [row] = planImport([file("a.png")]).rows;
    assert.deepEqual(pick(settleRow(row, { ok: true, body: { images: [{ polygonCount: 7 }], skipped: [], cells: 7, warnings: ["a.png: 1 hole dropped"] } })),
      { status: "stored", cells: 7, reason: "", warnings: ["a.png: 1 hole dropped"] });
    assert.deepEqual(pick(settleRow(row, { ok: true, body: { images: [], skipped: [{ file: "a.png", reason: "already in the project" }] } })),
      { status: "skipped", cells: 0, reason: "already in the project", warnings: [] });
    const refused = { ok: false, status: 400, message: "x", body: { rejected: [{ file: "a.png", reason: "not a readable image" }, { file: "coco.json", reason: "not valid" }] } };
    assert.deepEqual(pick(settleRow(row, refused)), { status: "rejected", cells: 0, reason: "a.png: not a readable image; coco.json: not valid", warnings: [] });
    assert.deepEqual(pick(settleRow(row, { ok: false, status: 413, body: null, message: "Too large." })), { status: "failed", cells: 0, reason: "Too large.", warnings: [] });
  });

  test("files go out a few at a time, each reports its progress, and the summary adds up", async () => {
    const { rows } = planImport(["a", "b", "c", "d", "e"].map((n) => file(`${n}.png`)));
    let inFlight = 0;
    let most = 0;
    const seen = [];
    const send = async (row, onProgress) => {
      inFlight += 1;
      most = Math.max(most, inFlight);
      onProgress(0.5);
      await new Promise((resolve) => setTimeout(resolve, 2));
      inFlight -= 1;
      if (row.file.name === "c.png") return { ok: false, status: 400, message: "", body: { rejected: [{ file: "c.png", reason: "bad" }] } };
      return { ok: true, body: { images: [{ polygonCount: 2 }], skipped: [] } };
    };
    const done = await runImport(rows, send, (next) => seen.push(next.map((row) => `${row.status}:${row.progress}`)));
    assert.equal(most, CONCURRENCY);
    assert.ok(seen.some((snapshot) => snapshot.includes("uploading:50")), "progress is reported per file");
    assert.deepEqual(summary(done), { total: 5, done: 5, stored: 4, skipped: 0, rejected: 1, failed: 0, cells: 8 });
  });

  test("a stopped import leaves what it had not sent waiting", async () => {
    const { rows } = planImport(["a", "b", "c", "d"].map((n) => file(`${n}.png`)));
    let sent = 0;
    const done = await runImport(rows, async () => {
      sent += 1;
      return { ok: true, body: { images: [{ polygonCount: 0 }] } };
    }, () => {}, () => sent >= 2);
    assert.equal(sent, 2);
    assert.deepEqual(done.map((row) => row.status), ["stored", "stored", "waiting", "waiting"]);
  });
});

function pick(row) {
  return { status: row.status, cells: row.cells, reason: row.reason, warnings: row.warnings };
}
