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


# The replaced platform's convertToJSON, as types: every key it wrote, at every level.
ORIGINAL_TOP = {"metadata", "images"}
ORIGINAL_METADATA = {"version", "created", "imageCount", "format"}
ORIGINAL_IMAGE = {"id", "index", "filename", "dimensions", "segmentation"}
ORIGINAL_SEGMENTATION = {"cellCount", "timestamp", "polygons", "statistics"}
ORIGINAL_EXTERNAL = {"id", "points", "area", "perimeter", "boundingBox", "centroid"}
ORIGINAL_INTERNAL = {"id", "points", "area", "perimeter"}
ORIGINAL_STATISTICS = {"totalExternalPolygons", "totalInternalPolygons", "totalArea"}


def test_every_key_of_the_replaced_platforms_json_is_present_at_every_level(project, tmp_path):
    data = export_json(project, tmp_path)
    assert set(data) == ORIGINAL_TOP
    assert ORIGINAL_METADATA <= set(data["metadata"])
    for image in data["images"]:
        assert set(image) == ORIGINAL_IMAGE
        assert set(image["dimensions"]) == {"width", "height"}
        segmentation = image["segmentation"]
        assert set(segmentation) == ORIGINAL_SEGMENTATION
        assert set(segmentation["polygons"]) == {"external", "internal"}
        assert set(segmentation["statistics"]) == ORIGINAL_STATISTICS
        for polygon in segmentation["polygons"]["external"]:
            assert ORIGINAL_EXTERNAL <= set(polygon)
            assert all(set(point) == {"x", "y"} for point in polygon["points"])
        for polygon in segmentation["polygons"]["internal"]:
            assert ORIGINAL_INTERNAL <= set(polygon)


def test_metadata_is_the_replaced_platforms_with_the_project_and_scale_beside_it(project, tmp_path):
    metadata = export_json(project, tmp_path)["metadata"]
    assert metadata["version"] == "1.0" and metadata["format"] == "custom_json"
    assert metadata["created"] == GENERATED_AT.isoformat() and metadata["imageCount"] == 2
    assert metadata["project"] == {"id": "p-7", "name": "Nuclei"}
    assert metadata["pixelToMicrometerScale"] == 0.25


def test_every_image_is_listed_with_its_index_file_name_and_size_even_without_polygons(project, tmp_path):
    images = export_json(project, tmp_path)["images"]
    assert [(i["id"], i["index"], i["filename"], i["dimensions"]) for i in images] == [
        ("img-1", 1, "one.png", {"width": 64, "height": 48}),
        ("img-2", 2, "two.png", {"width": 32, "height": 32}),
    ]
    empty = images[1]["segmentation"]
    assert empty["cellCount"] == 0 and empty["polygons"] == {"external": [], "internal": []}
    assert empty["statistics"] == {"totalExternalPolygons": 0, "totalInternalPolygons": 0, "totalArea": 0.0}
    assert empty["timestamp"] == GENERATED_AT.isoformat()


def test_a_cell_and_its_hole_have_the_original_fields_and_exportds_own_beside_them(project, tmp_path):
    segmentation = export_json(project, tmp_path)["images"][0]["segmentation"]
    cell, line = segmentation["polygons"]["external"]
    (hole,) = segmentation["polygons"]["internal"]
    assert cell == {
        "id": 1,
        "points": [{"x": x, "y": y} for x, y in SQUARE],
        "area": 1600.0,  # the outline's own area, as the original wrote it
        "perimeter": 160.0,
        "boundingBox": [10.0, 10.0, 40.0, 40.0],
        "centroid": {"x": 30.0, "y": 30.0},
        "polygonId": "cell-1",
        "className": "nucleus",
        "netArea": 1500.0,  # minus its hole, as in the metrics
    }
    assert hole == {
        "id": 1,
        "points": [{"x": x, "y": y} for x, y in HOLE],
        "area": 100.0,
        "perimeter": 40.0,
        "polygonId": "hole-1",
        "className": "nucleus",
        "parentId": "cell-1",
        "parent": 1,  # the cell's id in this list
    }
    assert segmentation["cellCount"] == 2  # every external polygon, as the original counted
    assert segmentation["statistics"] == {"totalExternalPolygons": 2, "totalInternalPolygons": 1,
                                          "totalArea": 1600.0 - 100.0}


def test_degenerate_polygons_are_kept_as_stored_with_zero_area_and_their_mean_point(project, tmp_path):
    line = export_json(project, tmp_path)["images"][0]["segmentation"]["polygons"]["external"][1]
    assert line["polygonId"] == "line-1" and line["id"] == 2
    assert line["area"] == 0.0 and line["netArea"] == 0.0
    assert line["perimeter"] == pytest.approx(2 * 50**0.5, rel=1e-6)
    assert line["centroid"] == {"x": 2.5, "y": 2.5} and line["boundingBox"] == [0.0, 0.0, 5.0, 5.0]


def test_one_item_is_reported_per_image(project, tmp_path):
    ctx = FakeContext()
    export_json(project, tmp_path, ctx)
    assert ctx.items == len(project.images) + 2  # the images, metadata.json, closing the ZIP
