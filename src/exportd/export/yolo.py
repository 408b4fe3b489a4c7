"""YOLO segmentation labels: `annotations/yolo/`.

One `<image stem>.txt` per image (stems as in `images/`), one line per cell:
`class x1 y1 x2 y2 …`, the outline's points divided by the image's width and
height, so every coordinate lies in [0, 1] (points outside the image are
clamped to its border). The format has no holes: a line is the cell's outer
outline. An image without cells gets an empty file, which YOLO reads as a
background image. `classes.txt` lists the class names, line n naming class n,
and `data.yaml` names them for Ultralytics-style tools.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from exportd.export.archive import ArchiveWriter, file_stem, image_file_names
from exportd.export.geometry import cells_of
from exportd.export.source import ImageData, ProjectSnapshot
from exportd.export.workers import Workers

if TYPE_CHECKING:
    from exportd.domain.options import ExportOptions
    from exportd.export.context import StepContext
    from exportd.export.formats import Group, ItemProgress

FOLDER = "annotations/yolo/"


class YoloWriter:
    name: ClassVar[str] = "yolo"
    group: ClassVar[Group] = "annotations"
    title: ClassVar[str] = "YOLO segmentation (one .txt per image, classes.txt, data.yaml)"
    path: ClassVar[str] = FOLDER

    def write(
        self,
        project: ProjectSnapshot,
        options: ExportOptions,
        archive: ArchiveWriter,
        ctx: StepContext,
        progress: ItemProgress,
        workers: Workers,
    ) -> None:
        names = image_file_names(project.images)
        classes = class_ids(project.images)
        for image, (text, warnings) in workers.map(image_labels, project.images, classes):
            for message in warnings:
                ctx.warn(message)
            archive.write_text(f"{FOLDER}{file_stem(names[image.id])}.txt", text)
            progress.done(f"YOLO: {image.name}", image.name)
        archive.write_text(f"{FOLDER}classes.txt", "".join(f"{name}\n" for name in classes))
        archive.write_text(f"{FOLDER}data.yaml", data_yaml(project.name, list(classes)))


def class_ids(images: Sequence[ImageData]) -> dict[str, int]:
    """Class ids from 0, by class name, in the order the names first appear."""
    classes: dict[str, int] = {}
    for image in images:
        for polygon in image.externals():
            classes.setdefault(polygon.class_name, len(classes))
    return classes


def image_labels(image: ImageData, classes: dict[str, int]) -> tuple[str, list[str]]:
    """One image's label file and its warnings (runs in a worker process)."""
    cells, warnings = cells_of(image)
    size = np.array([image.width, image.height], dtype=float)
    lines = []
    for cell in cells:
        normalised = np.clip(cell.polygon.points / size, 0.0, 1.0).ravel()
        lines.append(" ".join([str(classes[cell.polygon.class_name]), *(f"{v:.10g}" for v in normalised)]))
    return "".join(f"{line}\n" for line in lines), warnings


def data_yaml(project_name: str, classes: list[str]) -> str:
    """The dataset description; strings are JSON-quoted, which YAML reads as double-quoted scalars."""
    lines = [
        f"# YOLO segmentation labels of {json.dumps(project_name, ensure_ascii=False)}, exported by exportd.",
        "# Images are in images/ at the top of the ZIP, labels here; tools that look for",
        "# labels/ next to images/ need the .txt files moved there (see documentation/README.md).",
        "train: images",
        "val: images",
        f"nc: {len(classes)}",
        "names:" if classes else "names: {}",
        *(f"  {number}: {json.dumps(name, ensure_ascii=False)}" for number, name in enumerate(classes)),
    ]
    return "\n".join(lines) + "\n"
