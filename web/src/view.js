// What the export panel shows for one job: pure, from the state's Job and a
// translator (i18n.js). Every word comes from the catalogue.

import { canCancel } from "./state.js";

/** @typedef {(key: string, params?: Record<string, any>) => string} T */

/** @param {number|null|undefined} bytes */
export function formatBytes(bytes) {
  if (bytes == null || !Number.isFinite(bytes)) return "";
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

/**
 * @param {number|null|undefined} seconds
 * @param {T} t
 */
export function formatEta(seconds, t) {
  if (seconds == null || !Number.isFinite(seconds) || seconds < 0) return "";
  if (seconds < 1) return t("eta.lessThanSecond");
  if (seconds < 60) return t("eta.seconds", { seconds: Math.round(seconds) });
  const minutes = Math.floor(seconds / 60);
  return t("eta.minutes", { minutes, seconds: Math.round(seconds % 60) });
}

/**
 * @param {string|null|undefined} iso
 * @param {string} [language]
 */
export function formatTime(iso, language) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  return date.toLocaleString(language, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/** A status word, capitalised, in the user's language. */
export function statusWord(status, t) {
  return t(`status.${status}`);
}

/** The text of a notice kept in the state (`{kind, params}`). */
export function noticeText(notice, t) {
  if (!notice) return "";
  const params = { ...(notice.params ?? {}) };
  if ("error" in params && !params.error) params.error = t("job.unknownError");
  return t(`notice.${notice.kind}`, params);
}

/**
 * @param {import("./state.js").Job} job
 * @param {T} t
 * @param {number} [now]  the local clock, for the ETA's countdown between events
 */
export function jobView(job, t, now = Date.now()) {
  const status = job.status;
  const word = statusWord(status, t);
  let statusText = word;
  if (job.reconciling) statusText = t("status.reconnecting", { status: word });
  else if (job.cancelInFlight) statusText = t("status.cancelling", { status: word });
  else if (job.lost) statusText = t("status.unavailable", { status: word });

  const parts = [];
  if (status === "pending" || status === "processing") {
    if (job.stage) {
      const count = job.stageProgress && job.stageProgress.total ? ` ${job.stageProgress.current}/${job.stageProgress.total}` : "";
      parts.push(`${t(`stage.${job.stage}`)}${count}`);
    }
    if (job.message) parts.push(job.message);
    const eta = formatEta(remainingSeconds(job, now), t);
    if (eta && status === "processing") parts.push(eta);
    if (!parts.length) {
      if (status === "pending") parts.push(job.attempt > 1 ? t("job.queuedAgain", { attempt: job.attempt }) : t("job.queued"));
      else parts.push(job.progress > 0 ? t("job.working") : t("job.started"));
    }
  } else if (status === "completed") {
    const size = formatBytes(job.exportSize);
    parts.push(job.fileName ? `${job.fileName}${size ? ` (${size})` : ""}` : t("job.ready"));
    if (job.download === "scheduled") parts.push(t("job.downloadSoon"));
    else if (job.download === "running") parts.push(t("job.downloading"));
    else if (job.download === "done") parts.push(t("job.downloaded"));
  } else if (status === "failed") {
    parts.push(job.error ? t("job.failed", { error: job.error }) : t("job.failedBare"));
  } else if (status === "cancelled") {
    parts.push(job.reason ? t("job.cancelledWhy", { reason: t(`reason.${job.reason}`) }) : t("job.cancelled"));
  }

  const gone = job.notice?.kind === "gone";
  const warnings = status === "completed" ? job.warnings ?? [] : [];
  return {
    status,
    statusText,
    progress: Math.round(Math.min(100, Math.max(0, job.progress || 0))),
    message: parts.join(" · "),
    notice: noticeText(job.notice, t),
    noticeKind: job.notice?.kind ?? "",
    warnings,
    warningsTitle: warnings.length ? t("panel.warnings", { count: warnings.length }) : "",
    showCancel: canCancel(job) || (job.cancelInFlight && !job.terminal),
    cancelLabel: job.cancelInFlight ? t("panel.cancelling") : t("panel.cancel"),
    cancelBusy: job.cancelInFlight,
    showRetry: status === "failed" && job.terminal && Boolean(job.options),
    showDownload: status === "completed" && job.terminal && !gone && job.download !== "scheduled" && job.download !== "running",
    downloadLabel: job.download === "done" ? t("panel.downloadAgain") : t("panel.download"),
    showDiscard: job.terminal,
    showDismiss: job.terminal || job.lost,
    active: !job.terminal && !job.lost,
  };
}

/**
 * The ETA shown now: the smoothed estimate at the last event, counted down by the time since.
 * @param {import("./state.js").Job} job
 * @param {number} now
 */
export function remainingSeconds(job, now) {
  if (job.etaSeconds == null || !Number.isFinite(job.etaSeconds)) return null;
  const since = job.etaAt ? Math.max(0, (now - job.etaAt) / 1000) : 0;
  return Math.max(0, job.etaSeconds - since);
}
