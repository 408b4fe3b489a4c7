"""One upload request, checked and turned into what the store keeps, before anything is stored.

`prepare` reads every file of the request (images, and a COCO file, label
images or polygons as JSON for them), skips the images the project already
holds (same name and same bytes), and gathers every file it must refuse with
the reason. It touches neither the store nor the storage: the caller stores
the result only when nothing was refused, so a request is all or nothing.

Label images are read and traced in `pool` when the caller gives one (the
server's process pool, shared with the exports), inline otherwise; the
result is the same. A request keeps at most two label images per pool
process in flight, and the pool takes work first come, first served, so an
import waits at most for the batches the running exports already handed in,
and an export at most for the label images the running requests handed in.
A worker that died fails the request with `BrokenProcessPool` before anything
is stored.
"""

from __future__ import annotations

import io
import re
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError
from pydantic import ValidationError

from exportd.domain.errors import BadRequest
from exportd.domain.filenames import clean_file_name
from exportd.domain.limits import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, MAX_POINTS_PER_IMAGE, decoded_bytes
from exportd.domain.limits import MAX_POINTS_PER_POLYGON as MAX_POINTS
from exportd.domain.limits import MAX_POLYGONS_PER_IMAGE as MAX_POLYGONS
from exportd.domain.requests import IMAGE_POLYGONS, PolygonIn
from exportd.export.visualize import MAX_DECODED_BYTES, held_whole
from exportd.imports import coco as coco_files
from exportd.imports.labels import TracedLabels, trace_label_file
from exportd.imports.matching import match_labels
from exportd.segmentation import polygon_rows

IMAGE_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "TIFF": "image/tiff", "BMP": "image/bmp"}
ALREADY_THERE = "already in the project (same name and content)"


@dataclass(frozen=True, slots=True)
class Upload:
    name: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Existing:
    """An image the project holds, as far as telling a re-upload apart needs."""

    id: str
    name: str
    size: int
    read: Callable[[], bytes]  #: its stored bytes


@dataclass(frozen=True, slots=True)
class NewImage:
    upload: Upload
    name: str  #: safe and unique in the project
    width: int
    height: int
    kind: str  #: PNG, JPEG, TIFF or BMP
    polygons: list[dict[str, Any]]  #: stored rows (segmentation.polygon_rows)

    @property
    def content_type(self) -> str:
        return IMAGE_TYPES[self.kind]

    @property
    def cells(self) -> int:
        return sum(1 for row in self.polygons if row["kind"] == "external")


@dataclass(slots=True)
class Prepared:
    new: list[NewImage] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  #: {file, imageId, reason}
    rejected: list[dict[str, str]] = field(default_factory=list)  #: {file, reason, image?}
    warnings: list[str] = field(default_factory=list)

    def reject(self, name: str, reason: str, image: str | None = None) -> None:
        """Refuse file `name`; `image` names the uploaded image it concerns, when it is another file."""
        self.rejected.append({"file": name, "reason": reason} | ({"image": image} if image else {}))

    def refusal(self) -> BadRequest:
        listed = "; ".join(f"{r['file']}: {r['reason']}" for r in self.rejected)
        count = len(self.rejected)
        message = (f"{listed}." if count == 1 else f"{count} files were rejected: {listed}.") + " Nothing was stored."
        return BadRequest(message, field="files", rejected=self.rejected)


def prepare(images: Sequence[Upload], existing: Sequence[Existing], *,
            segmentation: dict[str, list[PolygonIn]] | None = None, coco: Upload | None = None,
            masks: Sequence[Upload] = (), class_name: str = "cell", pool: Executor | None = None,
            pool_workers: int = 1) -> Prepared:
    """Check one request's files; see the module's docstring. Raises BadRequest for a request without images."""
    if not images:
        raise BadRequest("No images were uploaded.", field="files")
    sources = [name for name, given in (("segmentation", segmentation), ("coco", coco), ("masks", masks)) if given]
    if len(sources) > 1:
        raise BadRequest(f"Send polygons in one way only, not {' and '.join(sources)}.", field=sources[1])
    result = Prepared()
    taken = {image.name for image in existing}
    seen: list[Existing] = list(existing)
    uploads = {upload.name: upload for upload in images}
    if len(uploads) < len(images):  # polygons, COCO images and label images are matched by name
        twice = sorted({upload.name for upload in images if sum(u.name == upload.name for u in images) > 1})
        raise BadRequest(f"Several uploaded files are named {', '.join(twice)}; send them in separate requests.",
                         field="files")
    if segmentation:
        unknown = sorted(set(segmentation) - set(uploads))
        if unknown:
            raise BadRequest(f"Segmentation names files that were not uploaded: {unknown}", field="segmentation")

    checked: dict[str, tuple[int, int, str]] = {}
    for upload in images:
        try:
            checked[upload.name] = inspect_image(upload)
        except BadRequest as error:
            result.reject(upload.name, error.details["reason"])

    polygons: dict[str, list[dict]] = {}  #: as clients send them, to validate
    traced: dict[str, list[dict]] = {}  #: rows traced here from label images, valid by construction
    source: dict[str, str] = {}  #: image name -> the file its polygons came from
    if coco:
        polygons = _coco_polygons(coco, checked, result)
        source = dict.fromkeys(polygons, coco.name)
    elif masks:
        _check_class_name(class_name)
        traced, source = _mask_polygons(masks, checked, result, class_name, pool, pool_workers)
    elif segmentation:
        polygons = {name: [shape.model_dump(by_alias=True, exclude_none=True) for shape in shapes]
                    for name, shapes in segmentation.items()}
        source = dict.fromkeys(polygons, "segmentation")

    for upload in images:
        if upload.name not in checked:
            continue
        width, height, kind = checked[upload.name]
        same = _same_image(upload, kind, seen)
        if same is not None:
            result.skipped.append({"file": upload.name, "imageId": same.id, "reason": ALREADY_THERE})
            continue
        try:
            rows = (_traced_rows(traced[upload.name]) if upload.name in traced
                    else _rows(polygons.get(upload.name, []), width, height))
        except BadRequest as error:
            result.reject(source.get(upload.name, upload.name), f"{upload.name}: {error.message}",
                          image=upload.name if upload.name in source else None)
            continue
        name = unique_name(safe_name(upload.name, kind), taken)
        taken.add(name)
        seen.append(Existing("(this upload)", name, len(upload.data), lambda data=upload.data: data))
        result.new.append(NewImage(upload, name, width, height, kind, rows))
    return result


def _coco_polygons(coco: Upload, checked: dict[str, tuple[int, int, str]],
                   result: Prepared) -> dict[str, list[dict]]:
    try:
        document = coco_files.parse(coco.data)
        described = set(coco_files.file_names(document))
        sizes = {name: (width, height) for name, (width, height, _) in checked.items()}
        polygons, warnings = coco_files.coco_polygons(document, sizes, max_points=MAX_POINTS)
    except coco_files.UnreadableCoco as error:
        result.reject(coco.name, str(error))
        return {}
    result.warnings += [f"{coco.name}: {message}" for message in warnings]
    result.warnings += [f"{name}: not in {coco.name}; imported without cells" for name in checked
                        if name not in described]
    return polygons


def _mask_polygons(masks: Sequence[Upload], checked: dict[str, tuple[int, int, str]], result: Prepared,
                   class_name: str, pool: Executor | None,
                   pool_workers: int) -> tuple[dict[str, list[dict]], dict[str, str]]:
    matched = match_labels(checked, [mask.name for mask in masks])
    work = [(mask.data, matched[mask.name], checked[matched[mask.name]][:2]) for mask in masks if mask.name in matched]
    traced = _traced(work, class_name, pool, 2 * pool_workers)
    polygons: dict[str, list[dict]] = {}
    source: dict[str, str] = {}
    try:
        for mask in masks:
            image = matched.get(mask.name)
            if image is None:
                result.warnings.append(f"{mask.name}: no uploaded image has its stem; not used")
                continue
            labels = next(traced)
            if image in polygons:
                result.reject(mask.name, f"a second label image for {image}", image)
                continue
            if labels.refusal is not None:
                result.reject(mask.name, labels.refusal, image)
                continue
            polygons[image] = labels.polygons
            source[image] = mask.name
            result.warnings += [f"{mask.name}: {message}" for message in labels.warnings]
    finally:
        traced.close()  # drops what the pool has not started
    for image in checked:
        if image not in polygons and image not in matched.values():
            result.warnings.append(f"{image}: no label image; imported without cells")
    return polygons, source


def _traced(work: list[tuple[bytes, str, tuple[int, int]]], class_name: str, pool: Executor | None,
            window: int) -> Iterator[TracedLabels]:
    """`trace_label_file` of each (data, image, size), in order: inline, or in `pool` with at most
    `window` in flight."""
    options = {"class_name": class_name, "max_points": MAX_POINTS, "max_image_points": MAX_POINTS_PER_IMAGE}
    if pool is None:
        for data, image, size in work:
            yield trace_label_file(data, image, size, **options)
        return
    waiting = iter(work)
    pending: deque[Future[TracedLabels]] = deque()
    try:
        while True:
            while len(pending) < window and (item := next(waiting, None)) is not None:
                pending.append(pool.submit(trace_label_file, *item, **options))
            if not pending:
                return
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def _check_class_name(class_name: str) -> None:
    """The class of traced cells obeys the rules of every polygon's class name."""
    try:
        PolygonIn.model_validate({"type": "external", "points": [[0, 0], [1, 0], [0, 1]], "className": class_name})
    except ValidationError as error:
        raise BadRequest(f"className: {error.errors()[0]['msg']}", field="className") from None


def _traced_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if len(rows) > MAX_POLYGONS:
        raise BadRequest(f"has {len(rows)} polygons; an image holds at most {MAX_POLYGONS}")
    longest = max((len(row["points"]) for row in rows), default=0)
    if longest > MAX_POINTS:
        raise BadRequest(f"has an outline of {longest} points even simplified; at most {MAX_POINTS}")
    total = sum(len(row["points"]) for row in rows)
    if total > MAX_POINTS_PER_IMAGE:
        raise BadRequest(f"has {total} points in all; an image holds at most {MAX_POINTS_PER_IMAGE}")
    return rows


def _rows(shapes: list[dict], width: int, height: int) -> list[dict[str, Any]]:
    if len(shapes) > MAX_POLYGONS:
        raise BadRequest(f"has {len(shapes)} polygons; an image holds at most {MAX_POLYGONS}")
    try:
        return polygon_rows(IMAGE_POLYGONS.validate_python(shapes), width, height)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise BadRequest(f"polygon {where}: {first['msg']}") from None


def _same_image(upload: Upload, kind: str, images: Sequence[Existing]) -> Existing | None:
    """An image with the upload's name (as stored, or made unique from it) and the same bytes."""
    stored = safe_name(upload.name, kind)
    pattern = re.compile(re.escape(Path(stored).stem) + r"(_\d+)?" + re.escape(Path(stored).suffix), re.IGNORECASE)
    for image in images:
        if image.size == len(upload.data) and pattern.fullmatch(image.name) and image.read() == upload.data:
            return image
    return None


def inspect_image(upload: Upload) -> tuple[int, int, str]:
    """(width, height, kind) of an image exportd accepts; BadRequest (with `reason`) for any other file."""
    try:
        with Image.open(io.BytesIO(upload.data)) as image:
            kind = image.format
            width, height = image.size
            mode = image.mode
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise _unusable(upload, "is not a readable image") from error
    if kind not in IMAGE_TYPES:
        raise _unusable(upload, f"is a {kind} image; PNG, JPEG, TIFF and BMP are supported")
    if width * height > MAX_IMAGE_PIXELS:
        raise _unusable(upload, f"is too large ({width}x{height})")
    if decoded_bytes(mode, (width, height)) > MAX_IMAGE_BYTES:
        megabytes = decoded_bytes(mode, (width, height)) / 1_048_576
        raise _unusable(upload, f"is too large ({width}x{height} {mode}, {megabytes:.0f} MiB once decoded; "
                                f"at most {MAX_IMAGE_BYTES // 1_048_576} MiB)")
    if (held := held_whole(upload.data)) > MAX_DECODED_BYTES:
        raise _unusable(upload, f"is too large for its encoding ({width}x{height} {mode}: this {kind} file cannot be read "
                                f"a strip at a time, and decoded it holds {held / 1_048_576:.0f} MiB; at most "
                                f"{MAX_DECODED_BYTES // 1_048_576} MiB. Saved as a non-interlaced 8-bit PNG, or as an "
                                f"uncompressed or zip-compressed TIFF, it is accepted")
    return width, height, kind


def _unusable(upload: Upload, reason: str) -> BadRequest:
    return BadRequest(f"{upload.name!r} {reason}.", field="files", reason=reason)


_EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif", "BMP": ".bmp"}
_VALID = {"PNG": {".png"}, "JPEG": {".jpg", ".jpeg"}, "TIFF": {".tif", ".tiff"}, "BMP": {".bmp"}}


def safe_name(name: str, kind: str) -> str:
    """The file name as stored: its last part, in its own language but safe on every filesystem
    (`clean_file_name`), with an extension that fits `kind`."""
    base = clean_file_name(Path(name.replace("\\", "/")).name, "image")
    stem, suffix = Path(base).stem or "image", Path(base).suffix.lower()
    return stem + (suffix if suffix in _VALID[kind] else _EXTENSIONS[kind])


def stored_stem(name: str) -> str:
    """The stem of every name an upload called `name` may be stored under (`safe_name`, `unique_name`)
    or may match as a duplicate: so the images whose names start with it, and the images of its size,
    are all of the project that `prepare` needs to see of the upload."""
    return Path(safe_name(name, "PNG")).stem  # the kind changes only the extension


def unique_name(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    stem, suffix = Path(name).stem, Path(name).suffix
    n = 2
    while f"{stem}_{n}{suffix}" in taken:
        n += 1
    return f"{stem}_{n}{suffix}"
