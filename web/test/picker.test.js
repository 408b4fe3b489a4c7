import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { matching, PAGE_SIZE, pickerPage, selectMatching, toggle } from "../src/picker.js";

/** 65 images: cell-1 … cell-65, uploaded one second apart; every third has no polygons. */
const images = Array.from({ length: 65 }, (_, i) => ({
  id: `i${i + 1}`, name: `cell-${i + 1}.png`, polygonCount: (i + 1) % 3 === 0 ? 0 : 5,
  createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
}));

describe("the image picker", () => {
  test("shows 30 per page and clamps the page asked for", () => {
    assert.equal(PAGE_SIZE, 30);
    const first = pickerPage(images, { query: "", sort: "name", page: 1 });
    assert.deepEqual([first.items.length, first.pages, first.matched], [30, 3, 65]);
    assert.equal(pickerPage(images, { query: "", sort: "name", page: 3 }).items.length, 5);
    assert.equal(pickerPage(images, { query: "", sort: "name", page: 9 }).page, 3);
    assert.equal(pickerPage([], { query: "", sort: "name", page: 1 }).pages, 1);
  });

  test("sorts by date (newest first), by name (numbers in order) and by status (segmented first)", () => {
    assert.equal(matching(images, { sort: "date" })[0].id, "i65");
    assert.deepEqual(matching(images, { sort: "name" }).slice(0, 3).map((i) => i.name), ["cell-1.png", "cell-2.png", "cell-3.png"]);
    const byStatus = matching(images, { sort: "status" });
    assert.equal(byStatus[0].polygonCount, 5);
    assert.equal(byStatus.at(-1).polygonCount, 0);
    assert.equal(byStatus.findIndex((i) => i.polygonCount === 0), 65 - 21);
  });

  test("searches by name, ignoring case", () => {
    assert.deepEqual(matching(images, { query: "CELL-6", sort: "name" }).map((i) => i.id), ["i6", "i60", "i61", "i62", "i63", "i64", "i65"]);
    assert.equal(pickerPage(images, { query: "nothing", sort: "name", page: 1 }).matched, 0);
  });

  test("select all and none act on what the search matches, across pages", () => {
    const all = selectMatching(new Set(), images, { query: "" }, true);
    assert.equal(all.size, 65);
    const fewer = selectMatching(all, images, { query: "cell-6" }, false);
    assert.equal(fewer.size, 58);
    assert.equal(fewer.has("i6"), false);
    assert.equal(fewer.has("i7"), true);
    assert.deepEqual([...toggle(new Set(["a"]), "b", true)].sort(), ["a", "b"]);
    assert.deepEqual([...toggle(new Set(["a"]), "a", false)], []);
  });
});
