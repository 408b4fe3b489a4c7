"""Synthetic microscopy-like images with their cell polygons, for the demo, tests and benchmarks.

Deterministic for a seed: a grey, noisy background with a few bright, soft-edged
cells, each the interior of a smooth irregular outline. Every fourth seed
(seed % 4 == 0) gives one cell a hole. Polygons come in the API's input shape.
"""

from __future__ import annotations

import io
import math
import uuid
from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

MIN_SIZE = 64
_WOBBLE = 0.08  #: amplitude of each of the outline's 3 harmonics, relative to its radius
_REACH = 1 + 3 * _WOBBLE  #: the farthest an outline gets from its centre, in radii


def synthetic_image(seed: int, width: int = 512, height: int = 384) -> tuple[bytes, list[dict]]:
    """A PNG and its polygons: 4 to 10 cells, and one hole for every fourth seed."""
    if width < MIN_SIZE or height < MIN_SIZE:
        raise ValueError(f"synthetic images are at least {MIN_SIZE}x{MIN_SIZE} pixels")
    rng = np.random.default_rng(seed)
    cells = _place_cells(rng, width, height)
    polygons = [
        _polygon(rng, "external", _outline(rng, cx, cy, radius, _WOBBLE), None) for cx, cy, radius in cells
    ]
    if seed % 4 == 0 and cells:
        index = int(rng.integers(len(cells)))
        cx, cy, radius = cells[index]
        dx, dy = rng.uniform(-0.15, 0.15, 2) * radius  # the hole reaches at most 0.55 radii out
        hole = _outline(rng, cx + dx, cy + dy, 0.3 * radius, _WOBBLE / 2)
        polygons.append(_polygon(rng, "internal", hole, polygons[index]["id"]))
    return _render(rng, width, height, polygons), polygons


def synthetic_project(count: int = 24, seed: int = 0) -> Iterator[tuple[str, bytes, list[dict]]]:
    """`(file name, PNG bytes, polygons)` for `spheroid_01.png`, `spheroid_02.png`, ..."""
    for number in range(1, count + 1):
        png, polygons = synthetic_image(seed * 1000 + number)
        yield f"spheroid_{number:02d}.png", png, polygons


def _place_cells(rng: np.random.Generator, width: int, height: int) -> list[tuple[float, float, float]]:
    """Centres and radii of 4-10 cells that neither touch each other nor the border."""
    wanted = int(rng.integers(4, 11))
    short = min(width, height)
    cells: list[tuple[float, float, float]] = []
    for _ in range(400):
        if len(cells) == wanted:
            break
        radius = float(rng.uniform(0.045, 0.095) * short)
        margin = _REACH * radius + 2
        cx, cy = rng.uniform(margin, width - margin), rng.uniform(margin, height - margin)
        if all(math.dist((cx, cy), (x, y)) > _REACH * (radius + r) + 4 for x, y, r in cells):
            cells.append((float(cx), float(cy), radius))
    return cells


def _outline(
    rng: np.random.Generator, cx: float, cy: float, radius: float, wobble: float
) -> list[list[float]]:
    """A smooth closed outline: a circle whose radius varies with 3 low harmonics."""
    count = int(rng.integers(24, 65))
    angles = np.linspace(0, 2 * math.pi, count, endpoint=False)
    radii = np.full(count, radius)
    for harmonic in (2, 3, 4):
        radii += radius * rng.uniform(0, wobble) * np.cos(harmonic * angles + rng.uniform(0, 2 * math.pi))
    xs, ys = cx + radii * np.cos(angles), cy + radii * np.sin(angles)
    return [[round(float(x), 2), round(float(y), 2)] for x, y in zip(xs, ys, strict=True)]


def _polygon(rng: np.random.Generator, kind: str, points: list[list[float]], parent: str | None) -> dict:
    return {
        "id": str(uuid.UUID(bytes=rng.bytes(16), version=4)),
        "type": kind,
        "points": points,
        "parentId": parent,
        "className": "cell",
    }


def _render(rng: np.random.Generator, width: int, height: int, polygons: list[dict]) -> bytes:
    """Background, soft bright cells (dark holes), noise; an 8-bit greyscale PNG."""
    cells = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(cells)
    for polygon in polygons:
        level = 0 if polygon["type"] == "internal" else int(rng.integers(110, 170))
        draw.polygon([tuple(p) for p in polygon["points"]], fill=level)
    glow = np.asarray(cells.filter(ImageFilter.GaussianBlur(1.5)), dtype=np.float32)
    ys, xs = np.mgrid[0:height, 0:width]
    vignette = 1 - 0.25 * (((xs - width / 2) / width) ** 2 + ((ys - height / 2) / height) ** 2)
    speckle = Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8))
    texture = np.asarray(speckle.filter(ImageFilter.GaussianBlur(2)), dtype=np.float32)
    pixels = 55 * vignette + glow * (0.85 + (texture - 128) / 200) + rng.normal(0, 6, (height, width))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()
