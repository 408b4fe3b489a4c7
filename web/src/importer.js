// Import into a project from the browser, through the same route as the CLI and the SDK:
// `POST /api/projects/{id}/images` (multipart `files`, and at most one of `coco` or `masks`
// with `className`). One image per request, so every file has its own progress and its own
// answer: stored (with its cells), skipped (already there), rejected (with the server's reason)
// or failed (the request did not get through). A COCO file goes with each request (the server
// ignores its other images); label images go with the image whose stem they carry.
//
// Pure except for `runImport`, which takes the sending function and a clock-free callback.

/** Label images belong to the image of the same stem, or the stem followed by one of these
 *  (the server's rule, src/exportd/imports/labels.py). */
export const MASK_SUFFIXES = ["_cp_masks", "_masks", "_mask", "_labels", "_label", "_seg"];
export const CONCURRENCY = 2;

/**
 * @typedef {{name: string, size?: number}} FileLike
 * @typedef {{file: FileLike, masks: FileLike[], status: "waiting"|"uploading"|"stored"|"skipped"|"rejected"|"failed",
 *            progress: number, cells: number, reason: string, warnings: string[]}} Row
 */

const stem = (name) => name.replace(/^.*[\\/]/, "").replace(/\.[^.]*$/, "");

/** The image stems a label file could belong to: its own stem, and without a known suffix. */
function maskStems(name) {
  const own = stem(name);
  return [own, ...MASK_SUFFIXES.filter((suffix) => own.endsWith(suffix)).map((suffix) => own.slice(0, -suffix.length))];
}

/**
 * One row per image, each with the label images that belong to it; and the label images
 * that belong to no image.
 * @param {FileLike[]} images
 * @param {FileLike[]} masks
 * @returns {{rows: Row[], unmatched: FileLike[]}}
 */
export function planImport(images, masks = []) {
  const byStem = new Map();
  const rows = images.map((file) => {
    const row = /** @type {Row} */ ({ file, masks: [], status: "waiting", progress: 0, cells: 0, reason: "", warnings: [] });
    if (!byStem.has(stem(file.name))) byStem.set(stem(file.name), row);
    return row;
  });
  const unmatched = [];
  for (const mask of masks) {
    const row = maskStems(mask.name).map((candidate) => byStem.get(candidate)).find(Boolean);
    if (row) row.masks.push(mask);
    else unmatched.push(mask);
  }
  return { rows, unmatched };
}

/**
 * The row after the server's answer to its request.
 * @param {Row} row
 * @param {{ok: true, body: any} | {ok: false, status: number, body: any, message: string}} answer
 * @returns {Row}
 */
export function settleRow(row, answer) {
  if (answer.ok) {
    const body = answer.body ?? {};
    const stored = (body.images ?? [])[0];
    const skipped = (body.skipped ?? [])[0];
    const warnings = Array.isArray(body.warnings) ? body.warnings : [];
    if (stored) return { ...row, status: "stored", progress: 100, cells: stored.polygonCount ?? body.cells ?? 0, warnings };
    if (skipped) return { ...row, status: "skipped", progress: 100, reason: skipped.reason ?? "", warnings };
    return { ...row, status: "failed", progress: 100, reason: "", warnings };
  }
  const rejected = Array.isArray(answer.body?.rejected) ? answer.body.rejected : [];
  if (answer.status === 400 && rejected.length) {
    return { ...row, status: "rejected", progress: 100, reason: rejected.map((r) => `${r.file}: ${r.reason}`).join("; ") };
  }
  return { ...row, status: "failed", progress: 100, reason: answer.message };
}

/**
 * What the import came to, for its summary line.
 * @param {Row[]} rows
 */
export function summary(rows) {
  const count = (status) => rows.filter((row) => row.status === status).length;
  return {
    total: rows.length,
    done: rows.filter((row) => row.status !== "waiting" && row.status !== "uploading").length,
    stored: count("stored"),
    skipped: count("skipped"),
    rejected: count("rejected"),
    failed: count("failed"),
    cells: rows.reduce((sum, row) => sum + (row.status === "stored" ? row.cells : 0), 0),
  };
}

/**
 * Send every row, `CONCURRENCY` at a time. `send(row)` resolves with the answer (see settleRow)
 * and reports upload progress through `onProgress(fraction)`; `onChange(rows)` is called after
 * every change. A stopped import (`shouldStop()`) leaves the rows not yet sent waiting.
 * @param {Row[]} rows
 * @param {(row: Row, onProgress: (fraction: number) => void) => Promise<any>} send
 * @param {(rows: Row[]) => void} onChange
 * @param {() => boolean} [shouldStop]
 */
export async function runImport(rows, send, onChange, shouldStop = () => false) {
  let next = 0;
  const current = [...rows];
  const update = (index, row) => {
    current[index] = row;
    onChange([...current]);
  };
  async function worker() {
    while (next < current.length && !shouldStop()) {
      const index = next;
      next += 1;
      update(index, { ...current[index], status: "uploading", progress: 0 });
      const answer = await send(current[index], (fraction) => {
        if (current[index].status === "uploading") update(index, { ...current[index], progress: Math.min(99, Math.round(fraction * 100)) });
      });
      update(index, settleRow(current[index], answer));
    }
  }
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, current.length) }, worker));
  return current;
}
