// The DOM: reads inputs, hands user intents to the app, renders what the app
// holds. No decisions are made here (see state.js, view.js, options.js, picker.js),
// and no words: every text comes from the catalogue through `t`.

import { buildOptions, describeOptions, formValuesFrom, problemsText } from "./options.js";
import { imageStatus, pickerPage, selectMatching, toggle } from "./picker.js";
import { formatBytes, formatTime, jobView, statusWord } from "./view.js";

const $ = (selector, root = document) => /** @type {HTMLElement} */ (root.querySelector(selector));
const TOAST_MS = 6000;

/** @typedef {(key: string, params?: Record<string, any>) => string} T */
/** @typedef {{key: string, params?: Record<string, any>} | null} Text  a catalogue key and its params */

/**
 * @param {{
 *   login(email: string, password: string): Promise<Text>,
 *   logout(): void,
 *   setLanguage(language: string): void,
 *   selectProject(id: string): void,
 *   openExport(): void,
 *   startExport(options: object, key: string): Promise<{close: boolean, error?: Text, keepKey?: boolean}>,
 *   retry(jobId: string): void,
 *   cancel(jobId: string): void,
 *   download(projectId: string, jobId: string, fileName: string|null): void,
 *   discard(projectId: string, jobId: string): void,
 *   dismiss(jobId: string): void,
 *   refreshHistory(): void,
 *   moreHistory(): void,
 *   createProject(name: string): Promise<Text>,
 *   openImport(): void,
 *   newKey(): string,
 * }} actions
 */
export function createUi(actions) {
  /** @type {T & {language?: string}} */
  let t = (key) => key;
  /** The job and project the panel shows, for its buttons. */
  let shown = { jobId: "", projectId: "", fileName: /** @type {string|null} */ (null) };
  let dialogKey = "";
  /** The dialog's slider ranges, from the server's defaults. */
  let dialogControls = /** @type {Record<string, {min: number, max: number, step?: number}>} */ ({});
  /** The picker: the project's images, what is selected, and the page asked for. */
  const picker = { projectId: "", images: /** @type {any[]} */ ([]), selected: new Set(), query: "", sort: "date", page: 1 };
  /** What the last render showed, to redraw it when the language changes. */
  let lastModel = /** @type {any} */ (null);
  let loginError = /** @type {Text} */ (null);
  let dialogError = /** @type {Text|string} */ ("");
  let projectError = /** @type {Text} */ (null);
  /** The toasts showing, with what they say. */
  const toasts = /** @type {Map<HTMLElement, Text>} */ (new Map());

  function bind() {
    $("#login-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const form = /** @type {HTMLFormElement} */ (event.currentTarget);
      const email = /** @type {HTMLInputElement} */ (form.elements.namedItem("email")).value.trim();
      const password = /** @type {HTMLInputElement} */ (form.elements.namedItem("password")).value;
      const submit = /** @type {HTMLButtonElement} */ ($("[data-testid=login-submit]"));
      submit.disabled = true;
      showLoginError(null);
      try {
        const problem = await actions.login(email, password);
        showLoginError(problem);
        if (!problem) form.reset();
      } finally {
        submit.disabled = false;
      }
    });
    $("#logout").addEventListener("click", () => actions.logout());
    $("#language").addEventListener("change", (event) => actions.setLanguage(/** @type {HTMLSelectElement} */ (event.target).value));

    $("#project-list").addEventListener("click", (event) => {
      const button = /** @type {HTMLElement|null} */ (/** @type {HTMLElement} */ (event.target).closest("[data-project-id]"));
      if (button) actions.selectProject(button.dataset.projectId ?? "");
    });

    $("#export-open").addEventListener("click", () => actions.openExport());
    $("#import-open").addEventListener("click", () => actions.openImport());
    $("#project-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const form = /** @type {HTMLFormElement} */ (event.currentTarget);
      const input = /** @type {HTMLInputElement} */ (form.elements.namedItem("name"));
      projectError = await actions.createProject(input.value);
      showProjectError();
      if (!projectError) input.value = "";
    });
    $("#export-cancel").addEventListener("click", () => shown.jobId && actions.cancel(shown.jobId));
    $("#export-retry").addEventListener("click", () => shown.jobId && actions.retry(shown.jobId));
    $("#export-download").addEventListener("click", () => shown.jobId && actions.download(shown.projectId, shown.jobId, shown.fileName));
    $("#export-discard").addEventListener("click", () => shown.jobId && actions.discard(shown.projectId, shown.jobId));
    $("#export-dismiss").addEventListener("click", () => shown.jobId && actions.dismiss(shown.jobId));
    $("#history-refresh").addEventListener("click", () => actions.refreshHistory());
    $("#history-more").addEventListener("click", () => actions.moreHistory());

    $("#export-history").addEventListener("click", (event) => {
      const button = /** @type {HTMLElement|null} */ (/** @type {HTMLElement} */ (event.target).closest("button[data-action]"));
      if (!button) return;
      const { action, jobId = "", projectId = "", fileName = "" } = button.dataset;
      if (action === "download") actions.download(projectId, jobId, fileName || null);
      if (action === "discard") actions.discard(projectId, jobId);
    });

    bindDialog();
  }

  // -- static texts and the language ----------------------------------------------------

  /** Switch every text to `translate`'s language, and redraw. */
  function setTranslator(translate) {
    t = translate;
    document.documentElement.lang = translate.language ?? "en";
    /** @type {HTMLSelectElement} */ ($("#language")).value = translate.language ?? "en";
    for (const element of document.querySelectorAll("[data-i18n]")) {
      element.textContent = t(/** @type {HTMLElement} */ (element).dataset.i18n ?? "");
    }
    for (const element of document.querySelectorAll("[data-i18n-placeholder]")) {
      element.setAttribute("placeholder", t(/** @type {HTMLElement} */ (element).dataset.i18nPlaceholder ?? ""));
    }
    for (const element of document.querySelectorAll("[data-i18n-aria-label]")) {
      element.setAttribute("aria-label", t(/** @type {HTMLElement} */ (element).dataset.i18nAriaLabel ?? ""));
    }
    showLoginError(loginError);
    showProjectError();
    for (const [element, said] of toasts) element.textContent = say(said);
    if (dialogOpen()) {
      renderDialogTexts();
      renderPicker();
      showDialogError(dialogError);
    }
    if (lastModel) render(lastModel);
  }

  /** @param {Text|string} text */
  function say(text) {
    if (!text) return "";
    return typeof text === "string" ? text : t(text.key, text.params);
  }

  function showLoginError(problem) {
    loginError = problem;
    const element = $("#login-error");
    element.textContent = say(problem);
    element.hidden = !problem;
  }

  function showProjectError() {
    const element = $("#project-error");
    element.textContent = say(projectError);
    element.hidden = !projectError;
  }

  function showDialogError(problem) {
    dialogError = problem;
    const element = $("#export-error");
    element.textContent = say(problem);
    element.hidden = !problem;
  }

  function showLogin(message) {
    lastModel = null;
    $("#booting").hidden = true;
    $("#app-view").hidden = true;
    $("#login-view").hidden = false;
    $("#logout").hidden = true;
    $("#user-email").hidden = true;
    $("#connection").hidden = true;
    closeDialog();
    showLoginError(message ?? null);
    /** @type {HTMLInputElement} */ ($("[data-testid=login-email]")).focus();
  }

  function showApp(user) {
    $("#booting").hidden = true;
    $("#login-view").hidden = true;
    $("#app-view").hidden = false;
    $("#logout").hidden = false;
    const email = $("#user-email");
    email.textContent = user.email;
    email.hidden = false;
    $("#connection").hidden = false;
  }

  // -- the export dialog -------------------------------------------------------------

  function bindDialog() {
    const form = /** @type {HTMLFormElement} */ ($("#export-form"));
    form.addEventListener("change", () => syncDialogControls());
    form.addEventListener("input", () => {
      syncDialogControls();
      showDialogError(""); // an old complaint goes once the user edits
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const { options, errors } = buildOptions(readForm(), dialogControls);
      if (Object.keys(errors).length) {
        showDialogError(problemsText(errors, t));
        if (errors.selectedImageIds || errors.pixelToMicrometerScale || errors.contents) showTab("general");
        return;
      }
      showDialogError("");
      const start = /** @type {HTMLButtonElement} */ ($("#export-start"));
      start.classList.add("busy");
      try {
        const result = await actions.startExport(options, dialogKey);
        if (result.close) {
          closeDialog();
        } else {
          showDialogError(result.error ?? "");
          // A refused request created nothing, and a changed one needs its own key;
          // after a network failure the key is kept (the server may have the job).
          if (!result.keepKey) dialogKey = actions.newKey();
        }
      } finally {
        start.classList.remove("busy");
      }
    });
    $("#export-close").addEventListener("click", () => closeDialog());

    for (const tab of form.querySelectorAll("[data-tab]")) {
      tab.addEventListener("click", () => showTab(/** @type {HTMLElement} */ (tab).dataset.tab ?? "general"));
    }

    // The picker: its controls are not options, so they stop here.
    const search = /** @type {HTMLInputElement} */ ($("#picker-search"));
    search.addEventListener("input", (event) => {
      event.stopPropagation();
      picker.query = search.value;
      picker.page = 1;
      renderPicker();
    });
    const sort = /** @type {HTMLSelectElement} */ ($("#picker-sort"));
    sort.addEventListener("change", (event) => {
      event.stopPropagation();
      picker.sort = sort.value;
      picker.page = 1;
      renderPicker();
    });
    $("#picker-all").addEventListener("click", () => pickMany(true));
    $("#picker-none").addEventListener("click", () => pickMany(false));
    $("#picker-prev").addEventListener("click", () => turnPage(-1));
    $("#picker-next").addEventListener("click", () => turnPage(1));
    $("#image-list").addEventListener("change", (event) => {
      event.stopPropagation();
      const input = /** @type {HTMLInputElement} */ (event.target);
      if (input.name !== "imageId") return;
      picker.selected = toggle(picker.selected, input.value, input.checked);
      chooseSelectedScope();
      renderPicker();
    });
  }

  function pickMany(on) {
    picker.selected = selectMatching(picker.selected, picker.images, picker, on);
    chooseSelectedScope();
    renderPicker();
  }

  function turnPage(delta) {
    picker.page += delta;
    renderPicker();
  }

  /** Picking images means exporting only those. */
  function chooseSelectedScope() {
    /** @type {HTMLInputElement} */ ($("#export-form").querySelector("input[name=imageScope][value=selected]")).checked = true;
    showDialogError("");
  }

  function showTab(name) {
    const form = $("#export-form");
    for (const tab of form.querySelectorAll("[data-tab]")) {
      const current = /** @type {HTMLElement} */ (tab).dataset.tab === name;
      tab.classList.toggle("current", current);
      tab.setAttribute("aria-selected", String(current));
    }
    for (const panel of form.querySelectorAll("[data-panel]")) {
      /** @type {HTMLElement} */ (panel).hidden = /** @type {HTMLElement} */ (panel).dataset.panel !== name;
    }
  }

  /**
   * @param {{project: any, formats: {annotations: any[], metrics: any[]},
   *          defaults: {options: any, controls: Record<string, {min: number, max: number, step?: number}>},
   *          key: string, options?: any}} args   `options`: start from these instead of the defaults
   */
  function openDialog({ project, formats, defaults, key, options }) {
    dialogKey = key;
    dialogControls = defaults.controls;
    const values = formValuesFrom(options ?? defaults.options);
    const form = /** @type {HTMLFormElement} */ ($("#export-form"));
    form.dataset.project = project?.name ?? "";
    fillFormats("#annotation-formats", "annotations", formats.annotations, values.annotationFormats);
    fillFormats("#metrics-formats", "metrics", formats.metrics, values.metricsFormats);
    setRanges(form, defaults.controls);
    const images = Array.isArray(project?.images) ? project.images : [];
    const known = new Set(images.map((image) => image.id));
    Object.assign(picker, {
      projectId: project?.id ?? "", images, query: "", sort: "date", page: 1,
      selected: new Set(values.selectedImageIds.filter((id) => known.has(id))),
    });
    /** @type {HTMLInputElement} */ ($("#picker-search")).value = "";
    /** @type {HTMLSelectElement} */ ($("#picker-sort")).value = "date";
    applyValues(form, values);
    showDialogError("");
    showTab("general");
    renderDialogTexts();
    renderPicker();
    syncDialogControls();
    const dialog = /** @type {HTMLDialogElement} */ ($("#export-dialog"));
    if (!dialog.open) dialog.showModal();
  }

  function renderDialogTexts() {
    const form = /** @type {HTMLFormElement} */ ($("#export-form"));
    $("#export-dialog-title").textContent = t("dialog.title", { project: form.dataset.project ?? "" });
    $("#image-count").textContent = picker.images.length ? `(${picker.images.length})` : "";
    const scale = dialogControls.pixelToMicrometerScale;
    $("#scale-label").textContent = scale ? t("option.scale", { min: scale.min, max: scale.max }) : "";
    for (const title of form.querySelectorAll("[data-format-title]")) {
      const element = /** @type {HTMLElement} */ (title);
      const key = `format.${element.dataset.group}.${element.dataset.format}`;
      const text = t(key);
      element.textContent = ` ${text === key ? element.dataset.fallback ?? "" : text}`;
    }
    syncDialogControls();
  }

  function renderPicker() {
    const { items, page, pages, matched } = pickerPage(picker.images, picker);
    picker.page = page;
    const list = $("#image-list");
    if (!items.length) {
      list.replaceChildren(paragraph(picker.images.length ? t("picker.noMatch") : ""));
    } else {
      list.replaceChildren(...items.map((image) => thumbnail(image)));
    }
    $("#picker-count").textContent = t("picker.count", { selected: picker.selected.size, total: picker.images.length });
    $("#picker-page").textContent = t("picker.page", { page, pages });
    /** @type {HTMLButtonElement} */ ($("#picker-prev")).disabled = page <= 1;
    /** @type {HTMLButtonElement} */ ($("#picker-next")).disabled = page >= pages;
    $("#picker").dataset.matched = String(matched);
  }

  function thumbnail(image) {
    const label = document.createElement("label");
    label.className = "thumb";
    label.title = image.name;
    const input = document.createElement("input");
    input.type = "checkbox";
    input.name = "imageId";
    input.value = image.id;
    input.checked = picker.selected.has(image.id);
    input.dataset.testid = `option-image-${image.id}`;
    const picture = document.createElement("img");
    picture.alt = "";
    picture.loading = "lazy";
    picture.decoding = "async";
    picture.src = `/api/projects/${encodeURIComponent(picker.projectId)}/images/${encodeURIComponent(image.id)}/thumbnail`;
    const name = document.createElement("span");
    name.className = "thumb-name";
    name.textContent = image.name;
    const meta = document.createElement("span");
    const status = imageStatus(image);
    meta.className = "thumb-meta";
    meta.dataset.status = status;
    meta.textContent = status === "segmented" ? t("picker.cells", { count: image.polygonCount }) : t("picker.unsegmented");
    label.append(input, picture, name, meta);
    return label;
  }

  function fillFormats(selector, group, list, chosen) {
    $(selector).replaceChildren(...list.map((format) => {
      const label = document.createElement("label");
      label.className = "check";
      const input = document.createElement("input");
      input.type = "checkbox";
      input.name = `${group}Format`;
      input.value = format.name;
      input.checked = chosen.includes(format.name);
      input.dataset.testid = `option-${group === "annotations" ? "annotation" : "metrics"}-${format.name}`;
      const name = document.createElement("b");
      name.textContent = format.name === "excel" ? "Excel" : format.name.toUpperCase();
      const title = document.createElement("span");
      title.className = "muted";
      Object.assign(title.dataset, { formatTitle: "", group, format: format.name, fallback: format.title ?? "" });
      label.append(input, " ", name, title);
      return label;
    }));
  }

  /** The sliders take their ranges from the server; the fill slider is in percent. */
  function setRanges(form, controls) {
    const field = (name) => /** @type {HTMLInputElement} */ (form.elements.namedItem(name));
    for (const name of ["strokeWidth", "fontSize"]) {
      const range = controls[name];
      Object.assign(field(name), { min: String(range.min), max: String(range.max), step: String(range.step ?? 1) });
    }
    const fill = controls.transparency;
    Object.assign(field("transparency"), {
      min: String(Math.round(fill.min * 100)), max: String(Math.round(fill.max * 100)), step: String(Math.round((fill.step ?? 0.1) * 100)),
    });
    const scale = controls.pixelToMicrometerScale;
    Object.assign(field("pixelToMicrometerScale"), { min: String(scale.min), max: String(scale.max) });
  }

  function applyValues(form, values) {
    const field = (name) => /** @type {HTMLInputElement} */ (form.elements.namedItem(name));
    field("includeOriginalImages").checked = values.includeOriginalImages;
    field("includeVisualizations").checked = values.includeVisualizations;
    field("includeDocumentation").checked = values.includeDocumentation;
    field("showNumbers").checked = values.showNumbers;
    field("externalColor").value = values.externalColor;
    field("internalColor").value = values.internalColor;
    field("strokeWidth").value = values.strokeWidth;
    field("fontSize").value = values.fontSize;
    field("transparency").value = values.transparency;
    field("useScale").checked = values.useScale;
    field("pixelToMicrometerScale").value = values.pixelToMicrometerScale;
    for (const radio of form.querySelectorAll("input[name=imageScope]")) {
      /** @type {HTMLInputElement} */ (radio).checked = (/** @type {HTMLInputElement} */ (radio).value === "all") === values.allImages;
    }
  }

  function readForm() {
    const form = /** @type {HTMLFormElement} */ ($("#export-form"));
    const field = (name) => /** @type {HTMLInputElement} */ (form.elements.namedItem(name));
    const checked = (name) => [...form.querySelectorAll(`input[name=${name}]:checked`)].map((input) => /** @type {HTMLInputElement} */ (input).value);
    return {
      includeOriginalImages: field("includeOriginalImages").checked,
      includeVisualizations: field("includeVisualizations").checked,
      includeDocumentation: field("includeDocumentation").checked,
      showNumbers: field("showNumbers").checked,
      externalColor: field("externalColor").value,
      internalColor: field("internalColor").value,
      strokeWidth: field("strokeWidth").value,
      fontSize: field("fontSize").value,
      transparency: field("transparency").value,
      annotationFormats: checked("annotationsFormat"),
      metricsFormats: checked("metricsFormat"),
      allImages: checked("imageScope")[0] !== "selected",
      selectedImageIds: [...picker.selected],
      useScale: field("useScale").checked,
      pixelToMicrometerScale: field("pixelToMicrometerScale").value,
    };
  }

  /** Enable what applies: overlay settings with overlays, the scale with its box; show the sliders' values. */
  function syncDialogControls() {
    const form = /** @type {HTMLFormElement} */ ($("#export-form"));
    const field = (name) => /** @type {HTMLInputElement} */ (form.elements.namedItem(name));
    const overlays = field("includeVisualizations").checked;
    /** @type {HTMLFieldSetElement} */ ($("#viz-fieldset")).disabled = !overlays;
    $("#viz-off").hidden = overlays;
    field("pixelToMicrometerScale").disabled = !field("useScale").checked;
    $("#stroke-width-value").textContent = t("option.px", { value: field("strokeWidth").value });
    $("#font-size-value").textContent = t("option.px", { value: field("fontSize").value });
    $("#transparency-value").textContent = t("option.percent", { value: field("transparency").value });
  }

  function dialogOpen() {
    return /** @type {HTMLDialogElement} */ ($("#export-dialog")).open;
  }

  function closeDialog() {
    const dialog = /** @type {HTMLDialogElement} */ ($("#export-dialog"));
    if (dialog.open) dialog.close();
  }

  // -- toasts ----------------------------------------------------------------------------

  /**
   * A short message in the corner, gone after a few seconds or on a click.
   * @param {string} kind   completed, cancelled or failed
   * @param {Text} text
   */
  function toast(kind, text) {
    const element = document.createElement("div");
    element.className = "toast";
    element.dataset.kind = kind;
    element.dataset.testid = "toast";
    element.setAttribute("role", kind === "failed" ? "alert" : "status");
    const body = document.createElement("span");
    body.className = "toast-text";
    body.textContent = say(text);
    toasts.set(body, text); // re-worded if the language changes while it shows
    const close = document.createElement("button");
    close.type = "button";
    close.className = "ghost small";
    close.textContent = "×";
    close.setAttribute("aria-label", t("toast.close"));
    const remove = () => {
      toasts.delete(body);
      element.remove();
    };
    close.addEventListener("click", remove);
    element.append(body, close);
    $("#toasts").append(element);
    setTimeout(remove, TOAST_MS);
  }

  // -- rendering -------------------------------------------------------------------------

  /**
   * @param {{user: any, connected: boolean, projects: any[], projectId: string|null, project: any, job: any,
   *          history: any[]|null, historyMore: boolean, state: any, notice: Text, starting: boolean, now: number}} model
   */
  function render(model) {
    lastModel = model;
    const connection = $("#connection");
    connection.textContent = model.connected ? t("connection.live") : t("connection.offline");
    connection.classList.toggle("ok", model.connected);

    renderProjects(model);
    const detail = $("#project-detail");
    $("#project-empty").hidden = Boolean(model.projectId);
    detail.hidden = !model.projectId;
    if (!model.projectId) return;

    const project = model.project ?? model.projects.find((p) => p.id === model.projectId);
    $("#project-name").textContent = project?.name ?? "";
    const count = project?.imageCount ?? (Array.isArray(project?.images) ? project.images.length : null);
    const meta = count == null ? [] : [t("projects.images", { count })];
    if (project?.role === "shared") meta.push(t("projects.shared"));
    $("#import-open").hidden = project?.role === "shared"; // only the owner adds images
    $("#project-meta").textContent = meta.join(" · ");

    const job = model.job;
    const view = job ? jobView(job, t, model.now) : null;
    const open = /** @type {HTMLButtonElement} */ ($("#export-open"));
    open.classList.toggle("busy", model.starting);

    const notice = say(model.notice) || view?.notice || "";
    const noticeElement = $("#export-notice");
    noticeElement.textContent = notice;
    noticeElement.hidden = !notice;
    noticeElement.dataset.kind = model.notice ? "page" : (view?.noticeKind ?? "");

    renderPanel(job, view);
    renderHistory(model);
  }

  function renderProjects(model) {
    const list = $("#project-list");
    $("#project-list-empty").hidden = model.projects.length > 0;
    const wanted = `${t.language}:${model.projects.map((p) => `${p.id}/${p.imageCount}`).join(",")}`;
    if (list.dataset.ids !== wanted) {
      list.dataset.ids = wanted;
      list.replaceChildren(...model.projects.map((project) => {
        const item = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.className = "project-item";
        button.dataset.projectId = project.id;
        button.dataset.testid = `project-${project.id}`;
        const name = document.createElement("span");
        name.className = "name";
        name.textContent = project.name;
        const meta = document.createElement("span");
        meta.className = "muted small";
        meta.textContent = project.imageCount != null ? t("projects.images", { count: project.imageCount }) : "";
        button.append(name, meta);
        item.append(button);
        return item;
      }));
    }
    for (const button of list.querySelectorAll("[data-project-id]")) {
      const current = /** @type {HTMLElement} */ (button).dataset.projectId === model.projectId;
      button.classList.toggle("selected", current);
      if (current) button.setAttribute("aria-current", "true");
      else button.removeAttribute("aria-current");
    }
  }

  function renderPanel(job, view) {
    const panel = $("#export-panel");
    panel.hidden = !job;
    if (!job || !view) {
      shown = { jobId: "", projectId: "", fileName: null };
      return;
    }
    shown = { jobId: job.jobId, projectId: job.projectId, fileName: job.fileName };
    panel.dataset.jobId = job.jobId;
    panel.dataset.status = job.status;
    const status = $("#export-status");
    status.textContent = view.statusText;
    status.dataset.status = view.status;
    $("#export-percent").textContent = `${view.progress}%`;
    const bar = $("#export-progress");
    bar.setAttribute("aria-valuenow", String(view.progress));
    bar.setAttribute("aria-valuetext", `${view.progress}% ${statusWord(view.status, t)}`);
    bar.dataset.status = view.status;
    /** @type {HTMLElement} */ (bar.firstElementChild).style.width = `${view.progress}%`;
    $("#export-message").textContent = view.message;

    const warnings = $("#export-warnings");
    warnings.hidden = !view.warnings.length;
    warnings.dataset.title = view.warningsTitle;
    warnings.replaceChildren(...view.warnings.map((warning) => {
      const item = document.createElement("li");
      item.textContent = warning;
      return item;
    }));

    const cancel = /** @type {HTMLButtonElement} */ ($("#export-cancel"));
    cancel.hidden = !view.showCancel;
    cancel.textContent = view.cancelLabel;
    cancel.classList.toggle("busy", view.cancelBusy);
    $("#export-retry").hidden = !view.showRetry;
    const download = /** @type {HTMLButtonElement} */ ($("#export-download"));
    download.hidden = !view.showDownload;
    download.textContent = view.downloadLabel;
    $("#export-discard").hidden = !view.showDiscard;
    $("#export-dismiss").hidden = !view.showDismiss;
  }

  function renderHistory(model) {
    const container = $("#export-history");
    $("#history-more").hidden = !model.historyMore;
    if (model.history == null) {
      container.replaceChildren(paragraph(t("history.loading")));
      return;
    }
    if (!model.history.length) {
      container.replaceChildren(paragraph(t("history.empty")));
      return;
    }
    const table = document.createElement("table");
    const head = document.createElement("thead");
    const headRow = document.createElement("tr");
    for (const key of ["history.started", "history.status", "history.contents", "history.size", ""]) {
      const th = document.createElement("th");
      th.textContent = key ? t(key) : "";
      headRow.append(th);
    }
    head.append(headRow);
    const body = document.createElement("tbody");
    for (const row of model.history) {
      // The live state of a followed job is newer than the history snapshot.
      const live = model.state.jobs[row.id];
      const status = live && live.seq >= (row.seq ?? 0) ? live.status : row.status;
      const tr = document.createElement("tr");
      tr.dataset.testid = `history-row-${row.id}`;
      tr.dataset.status = status;
      tr.append(
        cell(formatTime(row.createdAt, t.language), "nowrap"),
        badgeCell(status, row),
        cell(describeOptions(row.options, t), "contents"),
        cell(status === "completed" ? (row.available === false ? t("history.expired") : formatBytes(row.exportSize ?? live?.exportSize)) : "", "nowrap"),
      );
      const actionsCell = document.createElement("td");
      actionsCell.className = "row-actions";
      if (status === "completed") {
        actionsCell.append(button(t("history.download"), "download", row, `history-download-${row.id}`, "small"));
      }
      if (status === "completed" || status === "failed" || status === "cancelled") {
        actionsCell.append(button(t("history.discard"), "discard", row, `history-discard-${row.id}`, "small ghost"));
      }
      tr.append(actionsCell);
      body.append(tr);
    }
    table.append(head, body);
    container.replaceChildren(table);
  }

  function badgeCell(status, row) {
    const td = document.createElement("td");
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.dataset.status = status;
    badge.textContent = statusWord(status, t);
    td.append(badge);
    if (status === "failed" && row.error) td.title = row.error;
    if (status === "cancelled" && row.reason) td.title = t(`reason.${row.reason}`);
    return td;
  }

  function triggerDownload(url, fileName) {
    const anchor = document.createElement("a");
    anchor.href = url;
    anchor.download = fileName ?? "";
    anchor.rel = "noopener";
    anchor.hidden = true;
    document.body.append(anchor);
    anchor.click();
    anchor.remove();
  }

  return { bind, setTranslator, showLogin, showApp, render, openDialog, closeDialog, triggerDownload, toast };
}

function paragraph(text) {
  const p = document.createElement("p");
  p.className = "muted";
  p.textContent = text;
  return p;
}

function cell(text, className = "") {
  const td = document.createElement("td");
  td.textContent = text ?? "";
  if (className) td.className = className;
  return td;
}

function button(text, action, row, testid, className) {
  const element = document.createElement("button");
  element.type = "button";
  element.className = className;
  element.textContent = text;
  element.dataset.action = action;
  element.dataset.jobId = row.id;
  element.dataset.projectId = row.projectId;
  element.dataset.fileName = row.fileName ?? "";
  element.dataset.testid = testid;
  return element;
}
