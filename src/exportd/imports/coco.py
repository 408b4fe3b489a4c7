"""COCO instances files to polygons, image by image.

Images are matched by file name (the last part of `file_name`, so exportd's
own `images/a.png` matches an upload `a.png`). Each annotation is one cell of
the class its category names:

* a polygon segmentation (a list of flat `[x1, y1, x2, y2, …]` lists) keeps its
  points as they are; a part that lies inside another part of the same
  annotation is that part's hole (tools that cannot write holes otherwise
  write them so), every other part is a cell of its own;
* an RLE segmentation (`{"size": [h, w], "counts": …}`, uncompressed counts
  or COCO's compressed string) is a mask, traced to polygons with holes like
  a label image (`exportd.imports.trace`), so exportd's own masks of cells
  with holes come back as outlines that rasterise to the same pixels.

Anything malformed raises `UnreadableCoco` naming where.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Any

import numpy as np
from shapely import Point, Polygon

from exportd.imports.trace import regions


class UnreadableCoco(ValueError):
    """The COCO file cannot be read; the message says where."""


def parse(data: bytes) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UnreadableCoco(f"is not valid JSON ({error})") from None
    if not isinstance(document, dict) or not isinstance(document.get("images"), list):
        raise UnreadableCoco("is not a COCO instances file (no \"images\" list)")
    for key in ("annotations", "categories"):
        if not isinstance(document.get(key, []), list):
            raise UnreadableCoco(f"\"{key}\" is not a list")
    return document


def file_names(document: dict[str, Any]) -> list[str]:
    """The images a parsed COCO file describes, by file name."""
    return [_image_name(image, n) for n, image in enumerate(document["images"])]


def coco_polygons(document: dict[str, Any], sizes: dict[str, tuple[int, int]], *,
                  max_points: int | None = None) -> tuple[dict[str, list[dict]], list[str]]:
    """Polygons (as clients send them) for each image of `sizes` (file name: (width, height)) the COCO
    file describes, and warnings. RLE masks must have their image's real size."""
    wanted = set(sizes)
    categories = _categories(document.get("categories", []))
    images: dict[Any, tuple[str, dict]] = {}
    for n, image in enumerate(document["images"]):
        name = _image_name(image, n)
        if name in wanted:
            width, height = sizes[name]
            images[image.get("id")] = (name, {**image, "width": width, "height": height})
    found: dict[str, list[dict]] = {name: [] for name, _ in images.values()}
    warnings: list[str] = []
    for n, annotation in enumerate(document.get("annotations", [])):
        where = f"annotations[{n}]"
        if not isinstance(annotation, dict):
            raise UnreadableCoco(f"{where} is not an object")
        if annotation.get("image_id") not in images:
            continue
        name, image = images[annotation["image_id"]]
        class_name = categories.get(annotation.get("category_id"))
        if class_name is None:
            raise UnreadableCoco(f"{where} names an unknown category_id {annotation.get('category_id')!r}")
        own = f"coco-{annotation['id']}" if isinstance(annotation.get("id"), int) else f"coco-{n + 1}"
        segmentation = annotation.get("segmentation")
        if isinstance(segmentation, list):
            shapes = _polygon_parts(segmentation, where)
        elif isinstance(segmentation, dict):
            shapes = _rle_parts(segmentation, image, where, max_points)
        else:
            raise UnreadableCoco(f"{where}.segmentation is neither polygons nor RLE")
        if not shapes:
            warnings.append(f"{name}: {where} has an empty segmentation; skipped")
        for k, (outline, holes) in enumerate(shapes, 1):
            cell = own if k == 1 else f"{own}.{k}"
            found[name].append({"id": cell, "type": "external", "points": outline, "className": class_name})
            found[name] += [{"id": f"{cell}-hole-{h}", "type": "internal", "points": hole, "parentId": cell}
                            for h, hole in enumerate(holes, 1)]
    return found, warnings


def _image_name(image: Any, n: int) -> str:
    if not isinstance(image, dict) or not isinstance(image.get("file_name"), str) or not image["file_name"]:
        raise UnreadableCoco(f"images[{n}] has no file_name")
    return PurePosixPath(image["file_name"].replace("\\", "/")).name


def _categories(categories: list) -> dict[Any, str]:
    names: dict[Any, str] = {}
    for n, category in enumerate(categories):
        if not isinstance(category, dict) or not isinstance(category.get("name"), str):
            raise UnreadableCoco(f"categories[{n}] has no name")
        name = category["name"].strip()
        if not name:
            raise UnreadableCoco(f"categories[{n}] has an empty name")
        names[category.get("id")] = name  # checked as every class name is, with the polygons
    return names


Ring = list[list[float]]


def _polygon_parts(segmentation: list, where: str) -> list[tuple[Ring, list[Ring]]]:
    rings: list[Ring] = []
    for k, flat in enumerate(segmentation):
        if (not isinstance(flat, list) or len(flat) < 6 or len(flat) % 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in flat)):
            raise UnreadableCoco(f"{where}.segmentation[{k}] is not a list of at least 3 finite x, y pairs")
        rings.append([[float(flat[i]), float(flat[i + 1])] for i in range(0, len(flat), 2)])
    if len(rings) == 1:
        return [(rings[0], [])]
    shells = [Polygon(ring).buffer(0) for ring in rings]
    parents: list[int | None] = []
    for k, ring in enumerate(rings):
        probe = Point(ring[0])
        inside = [j for j, shell in enumerate(shells) if j != k and shell.area > shells[k].area
                  and shell.covers(probe)]
        parents.append(min(inside, key=lambda j: shells[j].area) if inside else None)
    # a part inside a hole is a cell again (even-odd); only parts whose parent is a shell are holes
    depth = [0] * len(rings)
    for k in range(len(rings)):
        j = parents[k]
        while j is not None:
            depth[k] += 1
            j = parents[j]
    cells = {k: (rings[k], []) for k in range(len(rings)) if depth[k] % 2 == 0}
    for k in range(len(rings)):
        if depth[k] % 2 == 1:
            cells[parents[k]][1].append(rings[k])
    return list(cells.values())


def _rle_parts(rle: dict, image: dict, where: str, max_points: int | None) -> list[tuple[Ring, list[Ring]]]:
    height, width = image["height"], image["width"]
    if rle.get("size") != [height, width]:
        raise UnreadableCoco(f"{where}.segmentation.size {rle.get('size')!r} is not the image's [{height}, {width}]")
    mask = decode_rle(rle, where)
    return [(region.outline.tolist(), [hole.tolist() for hole in region.holes])
            for region in regions(mask.view(np.uint8), max_points=max_points)]


def decode_rle(rle: dict, where: str = "segmentation") -> np.ndarray:
    """The (height, width) boolean mask of a COCO RLE, its counts a list or COCO's compressed string."""
    size, counts = rle.get("size"), rle.get("counts")
    if (not isinstance(size, list) or len(size) != 2 or not all(isinstance(v, int) and 0 < v <= 100_000 for v in size)
            or size[0] * size[1] > 100_000_000):
        raise UnreadableCoco(f"{where}.segmentation.size is not [height, width]")
    if isinstance(counts, str):
        runs = _uncompress(counts, where)
    elif isinstance(counts, list) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts):
        runs = counts
    else:
        raise UnreadableCoco(f"{where}.segmentation.counts is neither a list of run lengths nor a COCO string")
    height, width = size
    if sum(runs) != height * width:
        raise UnreadableCoco(f"{where}.segmentation.counts covers {sum(runs)} pixels, not {height} x {width}")
    values = np.zeros(len(runs), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, runs)
    return flat.reshape((width, height)).T  # column-major


def _uncompress(text: str, where: str) -> list[int]:
    """COCO's compressed counts: 5-bit groups in characters from 48, deltas from the count two back."""
    counts: list[int] = []
    position = 0
    data = text.encode("ascii", "replace")
    while position < len(data):
        value, shift, more = 0, 0, True
        while more:
            if position >= len(data):
                raise UnreadableCoco(f"{where}.segmentation.counts ends in the middle of a number")
            c = data[position] - 48
            if not 0 <= c < 64:
                raise UnreadableCoco(f"{where}.segmentation.counts is not a COCO compressed string")
            value |= (c & 0x1F) << (5 * shift)
            more = bool(c & 0x20)
            position += 1
            shift += 1
            if not more and c & 0x10:
                value |= -1 << (5 * shift)
        if len(counts) > 2:
            value += counts[-2]
        if value < 0:
            raise UnreadableCoco(f"{where}.segmentation.counts has a negative run")
        counts.append(value)
    return counts
