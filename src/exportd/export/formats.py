"""The protocol every format writer implements, and the registry of writers.

A new format is one new module with one writer class, added to
`ANNOTATION_WRITERS` or `METRICS_WRITERS`. A writer handles the images one at
a time: it asks `workers` for each image's part (computed inline or in a
process pool, handed back in order; `workers` asks the job whether to go on
before every image) and writes it::

    for image, part in workers.map(part_of_one_image, project.images):
        ...                                # add this image's part to the ZIP
        progress.done(f"COCO: {image.name}", image.name)
"""

from __future__ import annotations

from typing import ClassVar, Literal, Protocol

from exportd.domain.options import ExportOptions
from exportd.export.archive import ArchiveWriter
from exportd.export.coco import CocoWriter
from exportd.export.context import StepContext
from exportd.export.geojson import GeoJsonWriter
from exportd.export.json_format import JsonWriter
from exportd.export.masks import MasksWriter
from exportd.export.metrics import CsvMetrics, ExcelMetrics, JsonMetrics
from exportd.export.source import ProjectSnapshot
from exportd.export.workers import Workers
from exportd.export.yolo import YoloWriter

Group = Literal["annotations", "metrics"]


class ItemProgress(Protocol):
    def done(self, message: str = "", item: str = "") -> None:
        """One image of this writer is finished (reports progress, calls `ctx.item_done()`);
        `item` names it (the image's name) for the progress event's `stageProgress.currentItem`."""


class FormatWriter(Protocol):
    name: ClassVar[str]  #: as in the options, e.g. "coco"
    group: ClassVar[Group]
    title: ClassVar[str]  #: for people, e.g. "COCO instance segmentation"
    path: ClassVar[str]  #: where it lands in the ZIP (a file, or a folder ending in "/")

    def write(
        self,
        project: ProjectSnapshot,
        options: ExportOptions,
        archive: ArchiveWriter,
        ctx: StepContext,
        progress: ItemProgress,
        workers: Workers,
    ) -> None:
        """Write this format for `project.images` (already the selected ones), one item per image."""


ANNOTATION_WRITERS: dict[str, FormatWriter] = {
    w.name: w for w in (CocoWriter(), YoloWriter(), JsonWriter(), MasksWriter(), GeoJsonWriter())
}
METRICS_WRITERS: dict[str, FormatWriter] = {w.name: w for w in (ExcelMetrics(), CsvMetrics(), JsonMetrics())}
WRITERS: dict[Group, dict[str, FormatWriter]] = {
    "annotations": ANNOTATION_WRITERS,
    "metrics": METRICS_WRITERS,
}

#: optional parts of an export, besides the formats, that this version produces
FEATURES = ("originalImages", "visualizations", "documentation")


def writer_for(group: Group, name: str) -> FormatWriter:
    """The writer of one format; ValueError names the format when there is none."""
    try:
        return WRITERS[group][name]
    except KeyError:
        supported = ", ".join(WRITERS.get(group, {})) or "none"
        raise ValueError(
            f"{group} format {name!r} is not supported (supported: {supported})"
        ) from None


def available_formats() -> dict[str, list]:
    """What `GET /api/export/formats` returns: the writers by group, and the optional features."""
    described: dict[str, list] = {
        group: [
            {"name": w.name, "group": w.group, "title": w.title, "path": w.path}
            for w in writers.values()
        ]
        for group, writers in WRITERS.items()
    }
    described["features"] = list(FEATURES)
    return described
