"""Fixtures for the export tests: synthetic projects on disk, and one export of them."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exportd.domain.options import ExportOptions
from exportd.export.context import ExportCancelled
from exportd.export.pipeline import ExportResult, build_export
from exportd.export.source import ImageData, PolygonData, ProjectSnapshot
from exportd.synthetic import synthetic_image

GENERATED_AT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


class RecordingContext:
    """Records progress and warnings; cancels once `cancel_after` items are done."""

    def __init__(self, cancel_after: int | None = None) -> None:
        self.cancel_after = cancel_after
        self.items = 0
        self.percents: list[float] = []
        self.warnings: list[str] = []

    def raise_if_cancelled(self) -> None:
        if self.cancel_after is not None and self.items >= self.cancel_after:
            raise ExportCancelled()

    def advance(self, stage: str, current: int, total: int, percent: float, message: str = "",
                item: str = "") -> None:
        self.percents.append(percent)

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def item_done(self) -> None:
        self.items += 1


def polygon_from_api(data: dict) -> PolygonData:
    return PolygonData(data["id"], data["type"], data["points"], data["parentId"], data["className"])


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[..., ProjectSnapshot]:
    """`make_project(count, width=…, height=…)`: synthetic images written to disk, with their polygons."""

    def make(count: int, width: int = 512, height: int = 384, seed: int = 0) -> ProjectSnapshot:
        folder = tmp_path / f"stored-{count}-{width}x{height}-{seed}"
        folder.mkdir()
        images = []
        for number in range(1, count + 1):
            png, polygons = synthetic_image(seed * 1000 + number, width, height)
            path = folder / f"cells_{number:03d}.png"
            path.write_bytes(png)
            images.append(
                ImageData(f"img-{number}", path.name, width, height, path, tuple(map(polygon_from_api, polygons)))
            )
        return ProjectSnapshot(id="p-1", name="Demo spheroids", images=tuple(images))

    return make


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    path = tmp_path / "out"
    path.mkdir()
    return path


@pytest.fixture
def run_export(out_dir: Path) -> Callable[..., ExportResult]:
    """`run_export(project, ctx=None, pool=None, **options)`: one export into `out_dir`."""

    def run(
        project: ProjectSnapshot,
        ctx: RecordingContext | None = None,
        pool: Executor | None = None,
        **options: object,
    ) -> ExportResult:
        return build_export(
            project, ExportOptions(**options), out_dir, job_id="job-7", generated_at=GENERATED_AT,
            ctx=ctx or RecordingContext(), pool=pool,
        )

    return run


@pytest.fixture
def make_context() -> type[RecordingContext]:
    """`make_context(cancel_after=None)`: a context that records what the pipeline reports."""
    return RecordingContext
