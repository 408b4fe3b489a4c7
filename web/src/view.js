// What the export panel shows for one job: pure, from the state's Job.

import { canCancel } from "./state.js";

const STAGES = {
  images: "Images",
  visualizations: "Visualizations",
  annotations: "Annotations",
  metrics: "Metrics",
  documentation: "Documentation",
  compression: "Compression",
};

const REASONS = {
  user_cancelled: "by you",
  timeout: "time limit reached",
  system_cancelled: "by the system",
};

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

/** @param {number|null|undefined} seconds */
export function formatEta(seconds) {
  if (seconds == null || !Number.isFinite(seconds) || seconds < 0) return "";
  if (seconds < 1) return "less than a second left";
  if (seconds < 60) return `about ${Math.round(seconds)} s left`;
  const minutes = Math.floor(seconds / 60);
  const rest = Math.round(seconds % 60);
  return `about ${minutes} min ${rest} s left`;
}

/** @param {string|null|undefined} iso */
export function formatTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  return date.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/**
 * @param {import("./state.js").Job} job
 */
export function jobView(job) {
  const status = job.status;
  let statusText = status;
  if (job.reconciling) statusText += " · reconnecting…";
  else if (job.cancelInFlight) statusText += " · cancelling…";
  else if (job.lost) statusText += " · unavailable";

  const parts = [];
  if (status === "pending" || status === "processing") {
    if (job.stage) {
      const count = job.stageProgress && job.stageProgress.total ? ` ${job.stageProgress.current}/${job.stageProgress.total}` : "";
      parts.push(`${STAGES[job.stage] ?? job.stage}${count}`);
    }
    if (job.message) parts.push(job.message);
    const eta = formatEta(job.etaSeconds);
    if (eta && status === "processing") parts.push(eta);
    if (!parts.length) parts.push(status === "pending" ? "Waiting for a worker" : "Working");
  } else if (status === "completed") {
    const size = formatBytes(job.exportSize);
    parts.push(job.fileName ? `${job.fileName}${size ? ` (${size})` : ""}` : "Export ready");
    if (job.download === "scheduled") parts.push("download starts in a moment");
    else if (job.download === "running") parts.push("downloading…");
    else if (job.download === "done") parts.push("downloaded");
    if (job.warnings?.length) parts.push(`${job.warnings.length} warning${job.warnings.length > 1 ? "s" : ""}`);
  } else if (status === "failed") {
    parts.push(job.error ? `Failed: ${job.error}` : "Failed");
  } else if (status === "cancelled") {
    parts.push(`Cancelled${job.reason && REASONS[job.reason] ? ` (${REASONS[job.reason]})` : ""}`);
  }

  const gone = job.notice?.kind === "gone";
  return {
    status,
    statusText,
    progress: Math.round(Math.min(100, Math.max(0, job.progress || 0))),
    message: parts.join(" · "),
    notice: job.notice?.text ?? "",
    noticeKind: job.notice?.kind ?? "",
    showCancel: canCancel(job) || (job.cancelInFlight && !job.terminal),
    cancelBusy: job.cancelInFlight,
    showDownload: status === "completed" && job.terminal && !gone && job.download !== "scheduled" && job.download !== "running",
    downloadLabel: job.download === "done" ? "Download again" : "Download",
    showDiscard: job.terminal,
    showDismiss: job.terminal || job.lost,
    active: !job.terminal && !job.lost,
  };
}
