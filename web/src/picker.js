// The image picker of the export dialog, as pure functions: which images a page shows
// (search by name, sort by date, name or status, 30 per page) and the selection.

export const PAGE_SIZE = 30;
export const SORTS = /** @type {const} */ (["date", "name", "status"]);

/**
 * @typedef {{id: string, name: string, polygonCount?: number, createdAt?: string|null}} Image
 * @typedef {{query: string, sort: string, page: number}} PickerQuery
 */

/** An image's segmentation status, for sorting and its badge: `segmented` or `unsegmented`. */
export function imageStatus(image) {
  return (image.polygonCount ?? 0) > 0 ? "segmented" : "unsegmented";
}

const byName = (a, b) => a.name.localeCompare(b.name, undefined, { numeric: true, sensitivity: "base" });
const COMPARE = {
  // newest first; images uploaded together keep their upload order
  date: (a, b) => (b.image.createdAt ?? "").localeCompare(a.image.createdAt ?? "") || a.index - b.index,
  name: (a, b) => byName(a.image, b.image) || a.index - b.index,
  // segmented first, then by name
  status: (a, b) => imageStatus(a.image).localeCompare(imageStatus(b.image)) || byName(a.image, b.image) || a.index - b.index,
};

/**
 * The images matching the search, in the chosen order (the whole list, every page).
 * @param {Image[]} images
 * @param {{query?: string, sort?: string}} query
 */
export function matching(images, { query = "", sort = "date" } = {}) {
  const needle = query.trim().toLocaleLowerCase();
  const compare = COMPARE[sort] ?? COMPARE.date;
  return images
    .map((image, index) => ({ image, index }))
    .filter(({ image }) => !needle || image.name.toLocaleLowerCase().includes(needle))
    .sort(compare)
    .map(({ image }) => image);
}

/**
 * One page of the picker.
 * @param {Image[]} images
 * @param {PickerQuery} query
 * @returns {{items: Image[], page: number, pages: number, matched: number}}
 */
export function pickerPage(images, query) {
  const found = matching(images, query);
  const pages = Math.max(1, Math.ceil(found.length / PAGE_SIZE));
  const page = Math.min(Math.max(1, Math.floor(query.page) || 1), pages);
  return { items: found.slice((page - 1) * PAGE_SIZE, page * PAGE_SIZE), page, pages, matched: found.length };
}

/**
 * "Select all" and "select none" act on the images the search matches (all pages), so a
 * search narrows what they touch; with no search, on every image.
 * @param {Set<string>} selected
 * @param {Image[]} images
 * @param {{query?: string}} query
 * @param {boolean} on
 * @returns {Set<string>}
 */
export function selectMatching(selected, images, query, on) {
  const next = new Set(selected);
  for (const image of matching(images, query)) {
    if (on) next.add(image.id);
    else next.delete(image.id);
  }
  return next;
}

/** Flip one image. */
export function toggle(selected, id, on) {
  const next = new Set(selected);
  if (on) next.add(id);
  else next.delete(id);
  return next;
}
