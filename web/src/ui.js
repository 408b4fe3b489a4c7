// The DOM: reads inputs, hands user intents to the app, renders what the app
// holds. No decisions are made here (see state.js and view.js).

import { buildOptions, describeOptions, formValuesFrom } from "./options.js";
import { formatBytes, formatTime, jobView } from "./view.js";

const $ = (selector, root = document) => /** @type {HTMLElement} */ (root.querySelector(selector));

/**
 * @param {{
 *   login(email: string, password: string): Promise<string>,
 *   logout(): void,
 *   selectProject(id: string): void,
 *   openExport(): void,
 *   startExport(options: object, key: string): Promise<{close: boolean, error?: string, keepKey?: boolean}>,
 *   cancel(jobId: string): void,
 *   download(projectId: string, jobId: string, fileName: string|null): void,
 *   discard(projectId: string, jobId: string): void,
 *   dismiss(jobId: string): void,
 *   refreshHistory(): void,
 *   newKey(): string,
 * }} actions
 */
export function createUi(actions) {
  /** The job and project the panel shows, for its buttons. */
  let shown = { jobId: "", projectId: "", fileName: /** @type {string|null} */ (null) };
  let dialogKey = "";
  /** The dialog's slider ranges, from the server's defaults. */
  let dialogControls = /** @type {Record<string, {min: number, max: number, step?: number}>} */ ({});

  function bind() {
    $("#login-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const form = /** @type {HTMLFormElement} */ (event.currentTarget);
      const email = /** @type {HTMLInputElement} */ (form.elements.namedItem("email")).value.trim();
      const password = /** @type {HTMLInputElement} */ (form.elements.namedItem("password")).value;
      const submit = /** @type {HTMLButtonElement} */ ($("[data-testid=login-submit]"));
      submit.disabled = true;
      setError("#login-error", "");
      try {
        const problem = await actions.login(email, password);
        setError("#login-error", problem);
        if (!problem) form.reset();
      } finally {
        submit.disabled = false;
      }
    });
    $("#logout").addEventListener("click", () => actions.logout());

    $("#project-list").addEventListener("click", (event) => {
      const button = /** @type {HTMLElement|null} */ (/** @type {HTMLElement} */ (event.target).closest("[data-project-id]"));
      if (button) actions.selectProject(button.dataset.projectId ?? "");
    });

    $("#export-open").addEventListener("click", () => actions.openExport());
    $("#export-cancel").addEventListener("click", () => shown.jobId && actions.cancel(shown.jobId));
    $("#export-download").addEventListener("click", () => shown.jobId && actions.download(shown.projectId, shown.jobId, shown.fileName));
    $("#export-discard").addEventListener("click", () => shown.jobId && actions.discard(shown.projectId, shown.jobId));
    $("#export-dismiss").addEventListener("click", () => shown.jobId && actions.dismiss(shown.jobId));
    $("#history-refresh").addEventListener("click", () => actions.refreshHistory());

    $("#export-history").addEventListener("click", (event) => {
      const button = /** @type {HTMLElement|null} */ (/** @type {HTMLElement} */ (event.target).closest("button[data-action]"));
      if (!button) return;
      const { action, jobId = "", projectId = "", fileName = "" } = button.dataset;
      if (action === "download") actions.download(projectId, jobId, fileName || null);
      if (action === "discard") actions.discard(projectId, jobId);
    });

    const form = /** @type {HTMLFormElement} */ ($("#export-form"));
    form.addEventListener("change", () => syncDialogControls());
    form.addEventListener("input", () => {
      syncDialogControls();
      setError("#export-error", ""); // an old complaint goes once the user edits
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const { options, errors } = buildOptions(readForm(), dialogControls);
      const problems = Object.values(errors);
      if (problems.length) {
        setError("#export-error", problems.join(" "));
        return;
      }
      setError("#export-error", "");
      const start = /** @type {HTMLButtonElement} */ ($("#export-start"));
      start.classList.add("busy");
      try {
        const result = await actions.startExport(options, dialogKey);
        if (result.close) {
          closeDialog();
        } else {
          setError("#export-error", result.error);
          // A refused request created nothing, and a changed one needs its own key;
          // after a network failure the key is kept (the server may have the job).
          if (!result.keepKey) dialogKey = actions.newKey();
        }
      } finally {
        start.classList.remove("busy");
      }
    });
    $("#export-close").addEventListener("click", () => closeDialog());
  }

  function setError(selector, message) {
    const element = $(selector);
    element.textContent = message;
    element.hidden = !message;
  }

  function showLogin(message) {
    $("#booting").hidden = true;
    $("#app-view").hidden = true;
    $("#login-view").hidden = false;
    $("#logout").hidden = true;
    $("#user-email").hidden = true;
    $("#connection").hidden = true;
    closeDialog();
    setError("#login-error", message || "");
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

  /**
   * @param {{project: any, formats: {annotations: any[], metrics: any[]},
   *          defaults: {options: any, controls: Record<string, {min: number, max: number, step?: number}>}, key: string}} args
   */
  function openDialog({ project, formats, defaults, key }) {
    dialogKey = key;
    dialogControls = defaults.controls;
    const values = formValuesFrom(defaults.options);
    const form = /** @type {HTMLFormElement} */ ($("#export-form"));
    $("#export-dialog-project").textContent = project?.name ? `“${project.name}”` : "";
    fillFormats("#annotation-formats", "annotation", formats.annotations, values.annotationFormats);
    fillFormats("#metrics-formats", "metrics", formats.metrics, values.metricsFormats);
    setRanges(form, defaults.controls);
    const images = Array.isArray(project?.images) ? project.images : [];
    $("#image-count").textContent = images.length ? `(${images.length})` : "";
    const list = $("#image-list");
    list.replaceChildren(...images.map((image) => {
      const label = document.createElement("label");
      label.className = "check";
      const input = document.createElement("input");
      input.type = "checkbox";
      input.name = "imageId";
      input.value = image.id;
      input.dataset.testid = `option-image-${image.id}`;
      label.append(input, ` ${image.name}`);
      const meta = document.createElement("span");
      meta.className = "muted";
      meta.textContent = ` ${image.width}×${image.height}, ${image.polygonCount} cells`;
      label.append(meta);
      return label;
    }));
    applyValues(form, values);
    setError("#export-error", "");
    syncDialogControls();
    const dialog = /** @type {HTMLDialogElement} */ ($("#export-dialog"));
    if (!dialog.open) dialog.showModal();
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
      input.dataset.testid = `option-${group}-${format.name}`;
      const name = document.createElement("b");
      name.textContent = format.name === "excel" ? "Excel" : format.name.toUpperCase();
      label.append(input, " ", name);
      if (format.title && format.title !== format.name) {
        const title = document.createElement("span");
        title.className = "muted";
        title.textContent = ` ${format.title}`;
        label.append(title);
      }
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
    Object.assign(field("transparency"), { min: String(fill.min * 100), max: String(fill.max * 100), step: String((fill.step ?? 0.1) * 100) });
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
      annotationFormats: checked("annotationFormat"),
      metricsFormats: checked("metricsFormat"),
      allImages: checked("imageScope")[0] !== "selected",
      selectedImageIds: checked("imageId"),
      useScale: field("useScale").checked,
      pixelToMicrometerScale: field("pixelToMicrometerScale").value,
    };
  }

  /** Enable what applies: overlay settings with overlays, the image list with "only these", the scale with its box. */
  function syncDialogControls() {
    const form = /** @type {HTMLFormElement} */ ($("#export-form"));
    const field = (name) => /** @type {HTMLInputElement} */ (form.elements.namedItem(name));
    /** @type {HTMLFieldSetElement} */ ($("#viz-fieldset")).disabled = !field("includeVisualizations").checked;
    const selected = /** @type {HTMLInputElement} */ (form.querySelector("input[name=imageScope][value=selected]")).checked;
    $("#image-list").classList.toggle("disabled", !selected);
    for (const input of form.querySelectorAll("input[name=imageId]")) /** @type {HTMLInputElement} */ (input).disabled = !selected;
    field("pixelToMicrometerScale").disabled = !field("useScale").checked;
    $("#stroke-width-value").textContent = `${field("strokeWidth").value} px`;
    $("#font-size-value").textContent = `${field("fontSize").value} px`;
    $("#transparency-value").textContent = `${field("transparency").value} %`;
  }

  function closeDialog() {
    const dialog = /** @type {HTMLDialogElement} */ ($("#export-dialog"));
    if (dialog.open) dialog.close();
  }

  // -- rendering -------------------------------------------------------------------------

  /**
   * @param {{user: any, connected: boolean, projects: any[], projectId: string|null, project: any, job: any,
   *          history: any[]|null, state: any, notice: string, starting: boolean}} model
   */
  function render(model) {
    const connection = $("#connection");
    connection.textContent = model.connected ? "live" : "offline · polling";
    connection.classList.toggle("ok", model.connected);

    renderProjects(model);
    const detail = $("#project-detail");
    $("#project-empty").hidden = Boolean(model.projectId);
    detail.hidden = !model.projectId;
    if (!model.projectId) return;

    const project = model.project ?? model.projects.find((p) => p.id === model.projectId);
    $("#project-name").textContent = project?.name ?? "";
    const count = project?.imageCount ?? (Array.isArray(project?.images) ? project.images.length : null);
    $("#project-meta").textContent = count == null ? "" : `${count} image${count === 1 ? "" : "s"}${project?.role === "shared" ? " · shared with you" : ""}`;

    const job = model.job;
    const view = job ? jobView(job) : null;
    const open = /** @type {HTMLButtonElement} */ ($("#export-open"));
    open.classList.toggle("busy", model.starting);

    const notice = model.notice || view?.notice || "";
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
    const wanted = model.projects.map((p) => p.id).join(",");
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
        meta.textContent = project.imageCount != null ? `${project.imageCount} images` : "";
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
    bar.setAttribute("aria-valuetext", `${view.progress}% ${view.status}`);
    bar.dataset.status = view.status;
    /** @type {HTMLElement} */ (bar.firstElementChild).style.width = `${view.progress}%`;
    $("#export-message").textContent = view.message;

    const cancel = /** @type {HTMLButtonElement} */ ($("#export-cancel"));
    cancel.hidden = !view.showCancel;
    cancel.textContent = view.cancelBusy ? "Cancelling…" : "Cancel export";
    cancel.classList.toggle("busy", view.cancelBusy);
    const download = /** @type {HTMLButtonElement} */ ($("#export-download"));
    download.hidden = !view.showDownload;
    download.textContent = view.downloadLabel;
    $("#export-discard").hidden = !view.showDiscard;
    $("#export-dismiss").hidden = !view.showDismiss;
  }

  function renderHistory(model) {
    const container = $("#export-history");
    if (model.history == null) {
      container.replaceChildren(paragraph("Loading…"));
      return;
    }
    if (!model.history.length) {
      container.replaceChildren(paragraph("No exports yet."));
      return;
    }
    const table = document.createElement("table");
    const head = document.createElement("thead");
    head.innerHTML = "<tr><th>Started</th><th>Status</th><th>Contents</th><th>Size</th><th></th></tr>";
    const body = document.createElement("tbody");
    for (const row of model.history) {
      // The live state of a followed job is newer than the history snapshot.
      const live = model.state.jobs[row.id];
      const status = live && live.seq >= (row.seq ?? 0) ? live.status : row.status;
      const tr = document.createElement("tr");
      tr.dataset.testid = `history-row-${row.id}`;
      tr.dataset.status = status;
      tr.append(
        cell(formatTime(row.createdAt), "nowrap"),
        badgeCell(status, row),
        cell(describeOptions(row.options)),
        cell(status === "completed" ? (row.available === false ? "expired" : formatBytes(row.exportSize ?? live?.exportSize)) : "", "nowrap"),
      );
      const actionsCell = document.createElement("td");
      actionsCell.className = "row-actions";
      if (status === "completed") {
        actionsCell.append(button("Download", "download", row, `history-download-${row.id}`, "small"));
      }
      if (status === "completed" || status === "failed" || status === "cancelled") {
        actionsCell.append(button("Discard", "discard", row, `history-discard-${row.id}`, "small ghost"));
      }
      tr.append(actionsCell);
      body.append(tr);
    }
    table.append(head, body);
    container.replaceChildren(table);
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

  return { bind, showLogin, showApp, render, openDialog, closeDialog, triggerDownload };
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

function badgeCell(status, row) {
  const td = document.createElement("td");
  const badge = document.createElement("span");
  badge.className = "badge";
  badge.dataset.status = status;
  badge.textContent = status;
  td.append(badge);
  if (status === "failed" && row.error) td.title = row.error;
  if (status === "cancelled" && row.reason) td.title = row.reason.replace("_", " ");
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
