"""Instance label images: read them, match them to their images, and turn them into polygons.

A label image holds one integer per pixel, 0 the background and every other
value one cell (Cellpose, StarDist and ilastik write them). 8-, 16- and 32-bit
PNG and TIFF files are read (TIFF with tifffile, PNG with Pillow); colour
images, floating-point data and negative labels are refused with the reason.
A label image belongs to the image whose file stem it shares, or that stem
followed by one of `matching.SUFFIXES` (Cellpose's `<stem>_cp_masks.png`, …).

`trace_label_file` is the whole of one label image's work, bytes in and
polygons out, as a process pool runs it: plain data both ways (the points are
NumPy arrays, which pickle as their buffer).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from exportd.imports.trace import COARSE_TOLERANCE, MAX_TOLERANCE, TOLERANCE, regions, simplified

MAX_LABEL_PIXELS = 100_000_000


class UnreadableLabels(ValueError):
    """The file is not a label image exportd can read; the message says why."""


def read_labels(data: bytes) -> np.ndarray:
    """The 2-D integer label array of a PNG or TIFF file."""
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        try:
            with tifffile.TiffFile(io.BytesIO(data)) as tiff:
                shape = tiff.series[0].shape
                if int(np.prod(shape, dtype=np.int64)) > MAX_LABEL_PIXELS:
                    raise UnreadableLabels(f"is too large ({' x '.join(map(str, shape))})")
                array = tiff.asarray()
        except UnreadableLabels:
            raise
        except Exception as error:  # tifffile raises many kinds for a broken file
            raise UnreadableLabels("is not a readable TIFF file") from error
    else:
        try:
            with Image.open(io.BytesIO(data)) as image:
                if image.format != "PNG":
                    raise UnreadableLabels(f"is a {image.format} file; label images are PNG or TIFF")
                if image.width * image.height > MAX_LABEL_PIXELS:
                    raise UnreadableLabels(f"is too large ({image.width}x{image.height})")
                if image.mode not in ("L", "I;16", "I;16B", "I", "P", "1"):
                    raise UnreadableLabels(f"is a {image.mode} image, not a single-channel label image")
                array = np.asarray(image)
        except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as error:
            raise UnreadableLabels("is not a readable PNG or TIFF file") from error
    array = np.squeeze(array)
    if array.ndim != 2:
        raise UnreadableLabels(f"has shape {tuple(array.shape)}, not a single 2-D label image")
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if not np.issubdtype(array.dtype, np.integer):
        raise UnreadableLabels(f"holds {array.dtype} values, not integer labels")
    if array.dtype.itemsize > 4:
        raise UnreadableLabels(f"holds {array.dtype.itemsize * 8}-bit labels; 8, 16 or 32 bits are read")
    if np.issubdtype(array.dtype, np.signedinteger):
        if array.size and array.min() < 0:
            raise UnreadableLabels("holds negative labels")
        array = array.astype(np.uint32)
    return array


@dataclass(frozen=True, slots=True)
class TracedLabels:
    """One label image's polygons (`label_polygons`) and warnings, or why it cannot be used."""

    polygons: list[dict]
    warnings: list[str]
    refusal: str | None = None  #: the reason it is refused: unreadable, or not the size of its image


def trace_label_file(data: bytes, image: str, size: tuple[int, int], *, class_name: str = "cell", max_points: int | None = None,
                     max_image_points: int | None = None) -> TracedLabels:
    """Read a label image meant for `image`, of `size` (width, height), and trace it (`label_polygons`)."""
    try:
        labels = read_labels(data)
    except UnreadableLabels as error:
        return TracedLabels([], [], str(error))
    width, height = size
    if labels.shape != (height, width):
        return TracedLabels([], [], f"is {labels.shape[1]}x{labels.shape[0]}, its image {image} is {width}x{height}")
    polygons, warnings = label_polygons(labels, class_name=class_name, max_points=max_points,
                                        max_image_points=max_image_points)
    return TracedLabels(polygons, warnings)


def label_polygons(labels: np.ndarray, *, class_name: str = "cell", max_points: int | None = None,
                   max_image_points: int | None = None) -> tuple[list[dict], list[str]]:
    """Polygons as the store keeps them (`segmentation.polygon_rows`: id, kind, points as an (n, 2)
    array, parent_id, class_name) for each label, and warnings about what tracing changed.

    `max_points` bounds each outline, `max_image_points` all of them together: past it every outline
    is simplified (Douglas-Peucker), the tolerance doubling from 0.5 px until they fit.
    Ids name the label: `label-7` (its second part `label-7.2`), holes `label-7-hole-1`.
    """
    polygons: list[dict] = []
    parts: dict[int, int] = {}
    coarse: list[int] = []
    for region in regions(labels, max_points=max_points):
        parts[region.label] = parts.get(region.label, 0) + 1
        own = f"label-{region.label}" + (f".{parts[region.label]}" if parts[region.label] > 1 else "")
        polygons.append({"id": own, "kind": "external", "points": region.outline, "parent_id": None,
                         "class_name": class_name})
        polygons += [{"id": f"{own}-hole-{n}", "kind": "internal", "points": hole, "parent_id": own,
                      "class_name": class_name} for n, hole in enumerate(region.holes, 1)]
        if region.tolerance > TOLERANCE:
            coarse.append(region.label)
    warnings = []
    if max_image_points is not None and sum(len(p["points"]) for p in polygons) > max_image_points:
        tolerance = _fit(polygons, max_image_points)
        warnings.append(f"outlines simplified with a tolerance of {tolerance:g} px to fit {max_image_points} "
                        "points per image")
    split = sorted(label for label, count in parts.items() if count > 1)
    if split:
        warnings.append(f"{_labels(split)} {'has' if len(split) == 1 else 'have'} separate parts; "
                        "each part is a cell")
    if coarse:
        warnings.append(f"{_labels(coarse)} simplified to at most {max_points} points per outline")
    if not parts:
        warnings.append("no labels (every pixel is 0); no cells")
    return polygons, warnings


def _fit(polygons: list[dict], budget: int) -> float:
    """Simplify every outline with one tolerance, doubling from 0.5 px, until all fit in `budget` points."""
    exact = [polygon["points"] for polygon in polygons]
    tolerance = COARSE_TOLERANCE
    while True:
        fitted = [simplified(ring, tolerance=tolerance) for ring in exact]
        if sum(len(ring) for ring in fitted) <= budget or tolerance >= MAX_TOLERANCE:
            for polygon, ring in zip(polygons, fitted, strict=True):
                polygon["points"] = ring
            return tolerance
        tolerance *= 2


def _labels(labels: list[int]) -> str:
    shown = ", ".join(str(label) for label in labels[:5])
    more = f" and {len(labels) - 5} more" if len(labels) > 5 else ""
    return f"label{'s' if len(labels) > 1 else ''} {shown}{more}"
