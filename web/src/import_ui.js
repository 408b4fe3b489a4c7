// The DOM of the import dialog: the files chosen or dropped, the source of the cells, and one
// line per image with its progress and its answer. The import itself is importer.js, run by
// main.js; nothing here decides or says anything of its own (texts come through `t`).

import { planImport, summary } from "./importer.js";

const $ = (selector) => /** @type {HTMLElement} */ (document.querySelector(selector));

/** @typedef {(key: string, params?: Record<string, any>) => string} T */

/**
 * @param {{
 *   start(request: {rows: import("./importer.js").Row[], coco: File|null, className: string, polygons: string}): void,
 *   stop(): void,
 *   exportNow(): void,
 * }} actions
 */
export function createImportUi(actions) {
  let t = /** @type {T} */ ((key) => key);
  const chosen = { images: /** @type {File[]} */ ([]), masks: /** @type {File[]} */ ([]) };
  let rows = /** @type {import("./importer.js").Row[]} */ ([]);
  let unmatched = /** @type {File[]} */ ([]);
  let running = false;
  let project = "";
  let problem = "";

  function bind() {
    const drop = $("#import-drop");
    drop.addEventListener("dragover", (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      drop.classList.remove("over");
      addImages([...(event.dataTransfer?.files ?? [])]);
    });
    const files = /** @type {HTMLInputElement} */ ($("#import-files"));
    files.addEventListener("change", () => {
      addImages([...(files.files ?? [])]);
      files.value = "";
    });
    for (const id of ["#import-masks", "#import-masks-folder"]) {
      const input = /** @type {HTMLInputElement} */ ($(id));
      input.addEventListener("change", () => {
        chosen.masks = [...chosen.masks, ...[...(input.files ?? [])].filter((file) => /\.(png|tiff?)$/i.test(file.name))];
        choose("masks");
        replan();
      });
    }
    $("#import-coco").addEventListener("change", () => choose("coco"));
    for (const radio of document.querySelectorAll("input[name=polygons]")) radio.addEventListener("change", () => replan());
    $("#import-form").addEventListener("submit", (event) => {
      event.preventDefault();
      submit();
    });
    $("#import-close").addEventListener("click", () => {
      if (running) actions.stop();
      close();
    });
    $("#import-export").addEventListener("click", () => {
      close();
      actions.exportNow();
    });
  }

  function choose(source) {
    /** @type {HTMLInputElement} */ ($(`input[name=polygons][value=${source}]`)).checked = true;
  }

  function addImages(files) {
    const images = files.filter((file) => /\.(png|jpe?g|tiff?|bmp)$/i.test(file.name));
    const known = new Set(chosen.images.map((file) => `${file.name}/${file.size}`));
    chosen.images = [...chosen.images, ...images.filter((file) => !known.has(`${file.name}/${file.size}`))];
    replan();
  }

  function replan() {
    if (running) return;
    const plan = planImport(chosen.images, source() === "masks" ? chosen.masks : []);
    rows = plan.rows;
    unmatched = /** @type {File[]} */ (plan.unmatched);
    setProblem("");
    render();
  }

  function source() {
    return /** @type {HTMLInputElement} */ ($("input[name=polygons]:checked")).value;
  }

  function submit() {
    if (running) return;
    replan();
    const coco = /** @type {HTMLInputElement} */ ($("#import-coco")).files?.[0] ?? null;
    if (!rows.length) return setProblem("import.noFiles");
    if (source() === "coco" && !coco) return setProblem("import.noCoco");
    if (source() === "masks" && !chosen.masks.length) return setProblem("import.noMasks");
    running = true;
    render();
    const className = /** @type {HTMLInputElement} */ ($("#import-class")).value.trim() || "cell";
    actions.start({ rows, coco: source() === "coco" ? coco : null, className, polygons: source() });
  }

  /** The import moved on: new rows (from main.js), and whether it is over. */
  function progress(next, finished) {
    rows = next;
    if (finished) {
      running = false;
      chosen.images = [];
      chosen.masks = [];
    }
    render();
  }

  /** @param {string} key  a catalogue key, or "" for none */
  function setProblem(key) {
    problem = key;
    const element = $("#import-error");
    element.textContent = key ? t(key) : "";
    element.hidden = !key;
  }

  function render() {
    $("#import-dialog-title").textContent = t("import.title", { project });
    const total = summary(rows);
    const started = rows.some((row) => row.status !== "waiting");
    $("#import-summary").textContent = started ? t("import.summary", total)
      : rows.length ? t("import.chosen", { count: rows.length }) : "";
    const list = $("#import-list");
    const lines = rows.map((row, index) => {
      const line = document.createElement("div");
      line.className = "import-row";
      line.dataset.testid = `import-file-${index}`;
      line.dataset.status = row.status;
      const name = document.createElement("span");
      name.className = "import-name";
      name.textContent = row.masks.length ? `${row.file.name} + ${t("import.masksOf", { count: row.masks.length })}` : row.file.name;
      const state = document.createElement("span");
      state.className = "import-state";
      const parts = [t(`import.status.${row.status}`, { progress: row.progress })];
      if (row.status === "stored") parts.push(t("import.cells", { count: row.cells }));
      if (row.reason) parts.push(row.reason);
      state.textContent = parts.join(" · ");
      const bar = document.createElement("span");
      bar.className = "import-bar";
      bar.style.setProperty("--done", `${row.progress}%`);
      line.append(name, state, bar);
      for (const warning of row.warnings) {
        const note = document.createElement("span");
        note.className = "import-warning";
        note.textContent = warning;
        line.append(note);
      }
      return line;
    });
    for (const file of unmatched) {
      const line = document.createElement("div");
      line.className = "import-row";
      line.dataset.status = "unmatched";
      line.textContent = t("import.unmatched", { file: file.name });
      lines.push(line);
    }
    list.replaceChildren(...lines);
    const start = /** @type {HTMLButtonElement} */ ($("#import-start"));
    start.disabled = running;
    start.classList.toggle("busy", running);
    $("#import-export").hidden = running || !rows.some((row) => row.status === "stored" || row.status === "skipped");
  }

  /** @param {string} name  the project's */
  function open(name) {
    project = name;
    if (!running) {
      chosen.images = [];
      chosen.masks = [];
      rows = [];
      unmatched = [];
      /** @type {HTMLFormElement} */ ($("#import-form")).reset();
    }
    setProblem("");
    render();
    const dialog = /** @type {HTMLDialogElement} */ ($("#import-dialog"));
    if (!dialog.open) dialog.showModal();
  }

  function close() {
    const dialog = /** @type {HTMLDialogElement} */ ($("#import-dialog"));
    if (dialog.open) dialog.close();
  }

  function setTranslator(translate) {
    t = translate;
    render();
    setProblem(problem);
  }

  return { bind, open, close, progress, setTranslator };
}
