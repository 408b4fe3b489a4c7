"""One export, step by step, cancellable between items.

Stages run in the order of `STAGES`. Before it starts, the pipeline counts the
items of every stage (one image in a stage, one document, and closing the ZIP),
so the overall percentage grows by the same step per item, never goes back, and
reaches 100 only once the ZIP is closed. Before every item it asks the job
whether to go on; whatever stops it, the partial ZIP is deleted.

Before the first writer, every polygon is checked once (export/geometry.py);
the writers share the result. Given a process pool, the per-image parts (the
checks, overlays, metric rows, annotations) are computed in it a few images ahead, and written here, in order, so the ZIP
is the same as without one. Images are copied into the ZIP in chunks and
never held in memory whole.

Warnings are kept once each (writers that skip the same polygon word it the
same way) and at most `MAX_WARNINGS` are listed, then a count of the rest.
"""

from __future__ import annotations

import math
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from exportd.domain.options import ExportOptions
from exportd.export.archive import ArchiveWriter, export_file_name, image_file_names
from exportd.export.context import STAGES, StepContext
from exportd.export.documentation import write_legacy_metadata, write_metadata, write_metrics_guide, write_readme
from exportd.export.formats import writer_for
from exportd.export.geometry import check_project
from exportd.export.guides import write_annotation_guides
from exportd.export.source import ProjectSnapshot
from exportd.export.visualize import write_visualizations
from exportd.export.workers import Workers

MAX_WARNINGS = 100
LIVE_MARKER = ".running"  #: in the output folder while the export may use the pool (see export/workers.py)


@dataclass(frozen=True, slots=True)
class ExportResult:
    path: Path
    size: int  #: bytes
    file_name: str
    warnings: list[str] = field(default_factory=list)


def build_export(
    project: ProjectSnapshot,
    options: ExportOptions,
    out_dir: Path,
    *,
    job_id: str,
    generated_at: datetime,
    ctx: StepContext,
    pool: Executor | None = None,
    started_at: datetime | None = None,
) -> ExportResult:
    """Write the ZIP for `options` into `out_dir`; raises ExportCancelled when told to stop.

    The ZIP is named after the project and `started_at`, when the export was started
    (by default `generated_at`).

    `pool`, a process pool owned by the caller, computes the per-image parts, at
    most twice its worker count of batches at a time; without one they are
    computed here.
    """
    project = _selected(project, options)
    annotation_writers = [writer_for("annotations", name) for name in options.annotation_formats]
    metrics_writers = [writer_for("metrics", name) for name in options.metrics_formats]
    job = _Recorder(ctx)
    images = len(project.images)
    guide = options.include_documentation and bool(metrics_writers)
    annotation_guides = options.include_documentation and bool(annotation_writers)
    progress = _Progress(
        job,
        {
            "images": images if options.include_original_images else 0,
            "visualizations": images if options.include_visualizations else 0,
            "annotations": images * len(annotation_writers),
            "metrics": images * len(metrics_writers),
            "documentation": 1 + 2 * options.include_documentation + guide + annotation_guides,
            "compression": 1,
        },
    )
    workers = Workers(job.raise_if_cancelled, pool, live=out_dir / LIVE_MARKER)
    file_name = export_file_name(project.name, started_at or generated_at)
    archive = ArchiveWriter(out_dir / file_name, generated_at)
    try:
        if options.include_original_images:
            _copy_images(project, archive, job, progress)
        if options.include_visualizations or annotation_writers or metrics_writers:
            project, warnings = check_project(project, workers)  # each polygon once, for every writer
            for message in warnings:
                job.warn(message)
        if options.include_visualizations:
            style = options.visualization_options
            write_visualizations(project, style, archive, job, progress.stage("visualizations"), workers)
        for writer in (*annotation_writers, *metrics_writers):
            writer.write(project, options, archive, job, progress.stage(writer.group), workers)
        if guide:
            job.raise_if_cancelled()
            write_metrics_guide(archive, options)
            progress.stage("documentation").done("metrics_guide.md", "metrics_guide.md")
        if annotation_guides:
            job.raise_if_cancelled()
            write_annotation_guides(archive, project, options)
            progress.stage("documentation").done("annotations/README.md", "annotations/README.md")
        if options.include_documentation:
            job.raise_if_cancelled()
            write_legacy_metadata(archive, project, options)
            progress.stage("documentation").done("documentation/metadata.json", "documentation/metadata.json")
            job.raise_if_cancelled()
            write_readme(archive, project, options)
            progress.stage("documentation").done("README.md", "README.md")
        job.raise_if_cancelled()
        job.close()
        write_metadata(archive, project, options, job_id=job_id, warnings=job.warnings)
        progress.stage("documentation").done("metadata.json", "metadata.json")
        job.raise_if_cancelled()
        size = archive.close()
        progress.stage("compression").done("ZIP written")
    except BaseException:
        workers.cancel()
        archive.abort()
        raise
    finally:
        workers.cancel()  # nothing is left to stop after a success, but the marker goes
    return ExportResult(archive.path, size, file_name, list(job.warnings))


def _selected(project: ProjectSnapshot, options: ExportOptions) -> ProjectSnapshot:
    """The project with only the selected images, in project order."""
    if options.selected_image_ids is None:
        return project
    wanted = set(options.selected_image_ids)
    return replace(project, images=tuple(i for i in project.images if i.id in wanted))


def _copy_images(
    project: ProjectSnapshot, archive: ArchiveWriter, ctx: StepContext, progress: _Progress
) -> None:
    names = image_file_names(project.images)
    stage = progress.stage("images")
    for image in project.images:
        ctx.raise_if_cancelled()
        if image.path.is_file():
            archive.write_file(f"images/{names[image.id]}", image.path)
        else:
            ctx.warn(f"{image.name}: the original file is missing from storage; not included")
        stage.done(image.name, image.name)


class _Recorder:
    """The job's context, passing each warning on once and keeping a copy for metadata.json."""

    def __init__(self, ctx: StepContext) -> None:
        self._ctx = ctx
        self.warnings: list[str] = []
        self._seen: set[str] = set()
        self._unlisted = 0

    def raise_if_cancelled(self) -> None:
        self._ctx.raise_if_cancelled()

    def advance(self, stage: str, current: int, total: int, percent: float, message: str = "",
                item: str = "") -> None:
        self._ctx.advance(stage, current, total, percent, message, item)

    def warn(self, message: str) -> None:
        if message in self._seen:
            return
        self._seen.add(message)
        if len(self.warnings) < MAX_WARNINGS:
            self._keep(message)
        else:
            self._unlisted += 1

    def close(self) -> None:
        """Add the count of warnings beyond `MAX_WARNINGS`, if any."""
        if self._unlisted:
            self._keep(f"{self._unlisted} more warnings are not listed")
            self._unlisted = 0

    def _keep(self, message: str) -> None:
        self.warnings.append(message)
        self._ctx.warn(message)

    def item_done(self) -> None:
        self._ctx.item_done()


class _Progress:
    """The plan (items per stage) and how much of it is done."""

    def __init__(self, ctx: StepContext, totals: dict[str, int]) -> None:
        self._ctx = ctx
        self._totals = totals
        self._done = dict.fromkeys(STAGES, 0)
        self._all = sum(totals.values())

    def stage(self, name: str) -> _StageProgress:
        return _StageProgress(self, name)

    def done(self, stage: str, message: str, item: str = "") -> None:
        self._done[stage] += 1
        done = sum(self._done.values())
        percent = math.floor(10_000 * done / self._all) / 100  # 100 only when everything is done
        self._ctx.advance(stage, self._done[stage], self._totals[stage], percent, message, item)
        self._ctx.item_done()


@dataclass(frozen=True, slots=True)
class _StageProgress:
    """What a writer gets as `progress`: `done(message, item)` once per image."""

    plan: _Progress
    stage: str

    def done(self, message: str = "", item: str = "") -> None:
        self.plan.done(self.stage, message, item)
