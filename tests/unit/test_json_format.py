"""The project's own JSON keeps every polygon, holes linked to their cells."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exportd.domain.options import ExportOptions
from exportd.export.pipeline import build_export
from exportd.export.source import ImageData, PolygonData, ProjectSnapshot

GENERATED_AT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)

SQUARE = ((10.0, 10.0), (50.0, 10.0), (50.0, 50.0), (10.0, 50.0))
HOLE = ((20.0, 20.0), (30.0, 20.0), (30.0, 30.0), (20.0, 30.0))


class FakeContext:
    def __init__(self) -> None:
        self.items = 0

    def raise_if_cancelled(self) -> None:
        pass

    def advance(self, stage: str, current: int, total: int, percent: float, message: str = "",
                item: str = "") -> None:
        pass

    def warn(self, message: str) -> None:
        pass

    def item_done(self) -> None:
        self.items += 1


@pytest.fixture
def project(tmp_path: Path) -> ProjectSnapshot:
    cell = PolygonData("cell-1", "external", SQUARE, class_name="nucleus")
    hole = PolygonData("hole-1", "internal", HOLE, parent_id="cell-1", class_name="nucleus")
    line = PolygonData("line-1", "external", ((0.0, 0.0), (5.0, 5.0)))
    images = (
        ImageData("img-1", "one.png", 64, 48, tmp_path / "one.png", (cell, hole, line)),
        ImageData("img-2", "two.png", 32, 32, tmp_path / "two.png"),
    )
    return ProjectSnapshot(id="p-7", name="Nuclei", images=images)


def export_json(project: ProjectSnapshot, out_dir: Path, ctx: FakeContext | None = None) -> dict:
    options = ExportOptions(
        annotation_formats=["json"], metrics_formats=[], include_original_images=False,
        include_visualizations=False, include_documentation=False, pixel_to_micrometer_scale=0.25,
    )
    ctx = ctx or FakeContext()
    result = build_export(project, options, out_dir, job_id="j", generated_at=GENERATED_AT, ctx=ctx)
    with zipfile.ZipFile(result.path) as archive:
        return json.loads(archive.read("annotations/json/segmentation_data.json"))


def test_the_file_names_the_project_and_the_export_time(project, tmp_path):
    data = export_json(project, tmp_path)
    assert data["project"] == {"id": "p-7", "name": "Nuclei"}
    assert data["exportedAt"] == GENERATED_AT.isoformat()
    assert data["pixelToMicrometerScale"] == 0.25


def test_every_image_is_listed_with_its_size_even_without_polygons(project, tmp_path):
    data = export_json(project, tmp_path)
    assert [(i["id"], i["name"], i["width"], i["height"]) for i in data["images"]] == [
        ("img-1", "one.png", 64, 48),
        ("img-2", "two.png", 32, 32),
    ]
    assert data["images"][1]["polygons"] == []


def test_polygons_keep_type_points_parent_and_class_and_cells_have_holes_subtracted(project, tmp_path):
    polygons = export_json(project, tmp_path)["images"][0]["polygons"]
    assert polygons[0] == {
        "id": "cell-1",
        "type": "external",
        "points": [list(p) for p in SQUARE],
        "parentId": None,
        "className": "nucleus",
        "area": 1600.0 - 100.0,
    }
    assert polygons[1]["type"] == "internal"
    assert polygons[1]["parentId"] == "cell-1"
    assert polygons[1]["area"] == 100.0


def test_degenerate_polygons_are_kept_as_stored_with_zero_area(project, tmp_path):
    polygons = export_json(project, tmp_path)["images"][0]["polygons"]
    assert polygons[2]["id"] == "line-1" and polygons[2]["area"] == 0.0


def test_one_item_is_reported_per_image(project, tmp_path):
    ctx = FakeContext()
    export_json(project, tmp_path, ctx)
    assert ctx.items == len(project.images) + 2  # the images, metadata.json, closing the ZIP
