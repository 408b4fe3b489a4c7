"""Importing a folder of one's own data through the upload route, a few images per request.

`plan_import` turns what the user named (image files and folders, a COCO file
or a folder of label images) into batches; `run_import` sends them. The server
takes a request whole or not at all and names every file it refuses, so a
refused batch is sent again without those files: one bad file costs only
itself. Images the project already holds are skipped by the server, so running
the same import again stores nothing twice.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from exportd.client.errors import BadRequest, PayloadTooLarge
from exportd.imports.matching import match_labels

if TYPE_CHECKING:
    from exportd.client.sdk import ExportdClient

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}
LABEL_SUFFIXES = {".png", ".tif", ".tiff"}
BATCH_IMAGES = 8
BATCH_BYTES = 24 * 1024 * 1024  #: well under the server's default upload limit (64 MiB)
IN_FLIGHT = 2  #: batches sent at once: the server works on one while the next travels


@dataclass(frozen=True, slots=True)
class ImportItem:
    """One image to import, and the label image that goes with it."""

    image: Path
    mask: Path | None = None

    @property
    def name(self) -> str:
        return self.image.name

    @property
    def size(self) -> int:
        return self.image.stat().st_size + (self.mask.stat().st_size if self.mask else 0)


@dataclass(slots=True)
class ImportSummary:
    """What an import stored, skipped and refused, and what the server noticed."""

    imported: list[dict[str, Any]] = field(default_factory=list)  #: the server's image views
    skipped: list[dict[str, Any]] = field(default_factory=list)  #: {file, imageId, reason}
    rejected: list[dict[str, str]] = field(default_factory=list)  #: {file, reason}
    warnings: list[str] = field(default_factory=list)
    cells: int = 0

    def reject(self, path: Path | str, reason: str) -> None:
        self.rejected.append({"file": str(path), "reason": reason})


@dataclass(slots=True)
class ImportPlan:
    items: list[ImportItem]
    coco: dict[str, Any] | None = None  #: the parsed COCO file, sliced per batch
    coco_name: str = "annotations.json"
    rejected: list[dict[str, str]] = field(default_factory=list)  #: refused before sending


def plan_import(images: Iterable[str | os.PathLike[str]], *, coco: str | os.PathLike[str] | None = None,
                masks: str | os.PathLike[str] | None = None) -> ImportPlan:
    """The images to send (files as named, folders' image files sorted by name), each with its label image.

    Raises ValueError for a COCO file that is not JSON or a path that does not exist.
    """
    if coco is not None and masks is not None:
        raise ValueError("Give a COCO file or a folder of label images, not both.")
    label_files = _files(masks, LABEL_SUFFIXES) if masks is not None else []
    label_paths = {path.resolve() for path in label_files}
    paths = [path for path in _expand(images) if path.resolve() not in label_paths]
    plan = ImportPlan([])
    by_name: dict[str, Path] = {}
    for path in paths:
        if path.name in by_name and by_name[path.name].resolve() != path.resolve():
            plan.rejected.append({"file": str(path), "reason": f"has the same name as {by_name[path.name]}"})
            continue
        by_name.setdefault(path.name, path)
    pairs: dict[str, Path] = {}
    if masks is not None:
        matched = match_labels(by_name, [path.name for path in label_files])
        for label in label_files:
            image = matched.get(label.name)
            if image is None:
                plan.rejected.append({"file": str(label), "reason": "no image has its stem"})
            elif image in pairs:
                plan.rejected.append({"file": str(label), "reason": f"a second label image for {image}"})
            else:
                pairs[image] = label
    plan.items = [ImportItem(path, pairs.get(name)) for name, path in by_name.items()]
    if coco is not None:
        path = Path(coco)
        try:
            document = json.loads(path.read_bytes())
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path} is not valid JSON ({error})") from None
        if not isinstance(document, dict) or not isinstance(document.get("images"), list):
            raise ValueError(f"{path} is not a COCO instances file (no \"images\" list)")
        plan.coco, plan.coco_name = document, path.name
    return plan


def coco_subset(document: dict[str, Any], names: set[str]) -> dict[str, Any]:
    """The part of a COCO file about the images named: those images, their annotations, every category."""
    images = [image for image in document["images"] if isinstance(image, dict)
              and PurePosixPath(str(image.get("file_name", "")).replace("\\", "/")).name in names]
    ids = {image.get("id") for image in images}
    annotations = [a for a in document.get("annotations", []) if isinstance(a, dict) and a.get("image_id") in ids]
    return {**document, "images": images, "annotations": annotations}


def batches(items: Sequence[ImportItem], *, max_images: int = BATCH_IMAGES,
            max_bytes: int = BATCH_BYTES) -> list[list[ImportItem]]:
    found: list[list[ImportItem]] = []
    current: list[ImportItem] = []
    size = 0
    for item in items:
        item_size = item.size
        if current and (len(current) >= max_images or size + item_size > max_bytes):
            found.append(current)
            current, size = [], 0
        current.append(item)
        size += item_size
    if current:
        found.append(current)
    return found


async def run_import(client: ExportdClient, project_id: str, plan: ImportPlan, *, class_name: str = "cell",
                     on_batch: Callable[[int, ImportSummary], None] | None = None,
                     in_flight: int = IN_FLIGHT) -> ImportSummary:
    """Send the plan, `in_flight` batches at a time; `on_batch(images_done, summary)` after each.

    The summary lists the batches' results in the plan's order, however the answers interleave.
    """
    summary = ImportSummary(rejected=list(plan.rejected))
    planned = batches(plan.items)
    parts = [ImportSummary() for _ in planned]
    slots = asyncio.Semaphore(in_flight)

    async def send(index: int, batch: list[ImportItem]) -> None:
        async with slots:
            await _send(client, project_id, plan, batch, parts[index], class_name)
        if on_batch is not None:
            on_batch(len(batch), _merged(summary, parts))

    tasks = [asyncio.ensure_future(send(index, batch)) for index, batch in enumerate(planned)]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return _merged(summary, parts)


def _merged(first: ImportSummary, parts: list[ImportSummary]) -> ImportSummary:
    merged = ImportSummary(rejected=list(first.rejected))
    for part in parts:
        merged.imported += part.imported
        merged.skipped += part.skipped
        merged.rejected += part.rejected
        merged.warnings += part.warnings
        merged.cells += part.cells
    return merged


async def _send(client: ExportdClient, project_id: str, plan: ImportPlan, batch: list[ImportItem],
                summary: ImportSummary, class_name: str) -> None:
    while batch:
        coco = None
        if plan.coco is not None:
            subset = coco_subset(plan.coco, {item.name for item in batch})
            coco = (plan.coco_name, json.dumps(subset).encode())
        try:
            answer = await client.upload_images(
                project_id, [item.image for item in batch], coco=coco,
                masks=[item.mask for item in batch if item.mask is not None] or None, class_name=class_name)
        except PayloadTooLarge:
            if len(batch) == 1:
                summary.reject(batch[0].image, "is larger than the server accepts in one upload")
                return
            half = len(batch) // 2
            await _send(client, project_id, plan, batch[:half], summary, class_name)
            batch = batch[half:]
            continue
        except BadRequest as error:
            batch = _without_refused(batch, error, summary)
            continue
        summary.imported += answer["images"]
        summary.skipped += answer["skipped"]
        summary.warnings += answer["warnings"]
        summary.cells += answer["cells"]
        return


def _without_refused(batch: list[ImportItem], error: BadRequest, summary: ImportSummary) -> list[ImportItem]:
    """The batch minus the images the server refused (or whose label image or polygons it refused)."""
    refused = error.details.get("rejected")
    if not isinstance(refused, list) or not refused:
        for item in batch:
            summary.reject(item.image, error.message)
        return []
    by_name = {item.name: item for item in batch}
    masks = {item.mask.name: item for item in batch if item.mask is not None}
    dropped: set[str] = set()
    for entry in refused:
        file, reason, image = str(entry.get("file")), str(entry.get("reason")), entry.get("image")
        if image in by_name:
            item = by_name[image]
            path = item.mask if item.mask is not None and item.mask.name == file else item.image
            summary.reject(path, reason)
            if path != item.image:
                summary.reject(item.image, f"not imported: {file} was rejected")
            dropped.add(image)
        elif file in by_name:
            summary.reject(by_name[file].image, reason)
            dropped.add(file)
        elif file in masks:
            summary.reject(masks[file].mask, reason)
            dropped.add(masks[file].name)
        else:  # a refusal that names no image of the batch (the COCO file itself): the batch cannot go
            for item in batch:
                summary.reject(item.image, f"{file}: {reason}")
            return []
    return [item for item in batch if item.name not in dropped]


def _expand(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += _files(path, IMAGE_SUFFIXES)
        elif path.is_file():
            found.append(path)
        else:
            raise ValueError(f"No such file or folder: {path}")
    return found


def _files(folder: str | os.PathLike[str], suffixes: set[str]) -> list[Path]:
    path = Path(folder)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ValueError(f"No such file or folder: {path}")
    return sorted((p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes
                   and not p.name.startswith(".")), key=lambda p: str(p.relative_to(path)))
