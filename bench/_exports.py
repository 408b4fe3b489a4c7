"""What the export benchmarks share: a synthetic project on disk, loading it, a quiet job context.

A project is a folder of PNG files plus `project.jsonl`, one image per line
with its polygons. The images are copies of `distinct` synthetic images
(`exportd.synthetic`, cycled), each written to its own file, so a 10,000-image
project does not take minutes to draw. Loading reads the manifest line by line,
so building the snapshot never holds more than one image's JSON at a time.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

from exportd.export.source import ImageData, PolygonData, ProjectSnapshot
from exportd.synthetic import synthetic_image

MANIFEST = "project.jsonl"


def build_project(folder: Path, count: int, width: int, height: int, distinct: int = 48) -> Path:
    """Write `count` images and the manifest into `folder`; returns the manifest's path."""
    folder.mkdir(parents=True, exist_ok=True)
    prototypes = [synthetic_image(seed, width, height) for seed in range(1, min(distinct, count) + 1)]
    with open(folder / MANIFEST, "w") as manifest:
        for number in range(1, count + 1):
            png, polygons = prototypes[(number - 1) % len(prototypes)]
            name = f"cells_{number:05d}.png"
            (folder / name).write_bytes(png)
            line = {"id": f"img-{number}", "name": name, "width": width, "height": height, "polygons": polygons}
            manifest.write(json.dumps(line) + "\n")
    return folder / MANIFEST


def load_project(manifest: Path) -> ProjectSnapshot:
    images = []
    with open(manifest) as lines:
        for line in lines:
            data = json.loads(line)
            polygons = tuple(
                PolygonData(p["id"], p["type"], p["points"], p["parentId"], p["className"]) for p in data["polygons"]
            )
            images.append(
                ImageData(data["id"], data["name"], data["width"], data["height"], manifest.parent / data["name"],
                          polygons)
            )
    return ProjectSnapshot(id="bench", name="Benchmark project", images=tuple(images))


class QuietContext:
    """A job that never stops and only counts items and warnings."""

    def __init__(self) -> None:
        self.items = 0
        self.warnings = 0

    def raise_if_cancelled(self) -> None:
        pass

    def advance(self, stage: str, current: int, total: int, percent: float, message: str = "",
                item: str = "") -> None:
        pass

    def warn(self, message: str) -> None:
        self.warnings += 1

    def item_done(self) -> None:
        self.items += 1


def machine() -> str:
    return (f"{os.cpu_count()} CPUs, {platform.machine()}, Linux {platform.release()}, "
            f"CPython {sys.version.split()[0]}, {time.strftime('%Y-%m-%d')}")


def verdict(value: float, target: float, higher_is_better: bool) -> str:
    met = value >= target if higher_is_better else value <= target
    return "meets target" if met else "MISSES target"
