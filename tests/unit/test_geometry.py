"""Every polygon is checked once per export, nothing is repaired, and polygons stored before the
door refused them (huge or far-off coordinates, control characters in class names) are skipped or
cleaned with a warning instead of failing the export."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import openpyxl
import pytest
import shapely

from exportd.domain.limits import MAX_POINTS_PER_POLYGON
from exportd.export import geometry
from exportd.export.geometry import FAR_OUTSIDE, NOT_FINITE, SELF_INTERSECTING, ZERO_AREA, defect
from exportd.export.source import ImageData, PolygonData, ProjectSnapshot

EVERYTHING = dict(
    include_original_images=True, include_visualizations=True, include_documentation=True,
    annotation_formats=["coco", "yolo", "json"], metrics_formats=["excel", "csv", "json"],
)
SQUARE = ((10.0, 10.0), (40.0, 10.0), (40.0, 40.0), (10.0, 40.0))


def with_polygons(project: ProjectSnapshot, *extra: PolygonData) -> ProjectSnapshot:
    first = project.images[0]
    damaged = ImageData(first.id, first.name, first.width, first.height, first.path, (*first.polygons, *extra))
    return ProjectSnapshot(project.id, project.name, images=(damaged, *project.images[1:]))


def test_each_polygon_is_checked_once_per_export_whatever_the_number_of_formats(run_export, make_project,
                                                                              monkeypatch):
    project = make_project(3, width=160, height=120)
    checked = []
    real = geometry.defect
    monkeypatch.setattr(geometry, "defect", lambda points, *size: checked.append(1) or real(points, *size))
    run_export(project, **EVERYTHING)
    assert len(checked) == sum(len(image.polygons) for image in project.images)


def test_a_self_intersecting_polygon_at_the_point_limit_is_skipped_without_any_repair(run_export, make_project,
                                                                                     make_context, monkeypatch):
    def no_repair(*args, **kwargs):
        raise AssertionError("make_valid costs the square of the crossings: never on client input")

    monkeypatch.setattr(shapely, "make_valid", no_repair)
    project = make_project(2, width=500, height=500)
    tangle = np.random.default_rng(1).uniform(0, 500, (MAX_POINTS_PER_POLYGON, 2))
    ctx = make_context()
    result = run_export(with_polygons(project, PolygonData("tangle", "external", tangle)), ctx, **EVERYTHING)
    assert f"{project.images[0].name}: skipped 1 polygon with {SELF_INTERSECTING} (tangle)" in result.warnings
    stored = json.loads(zipfile.ZipFile(result.path).read("annotations/json/segmentation_data.json"))
    kept = {p["polygonId"]: p for p in stored["images"][0]["segmentation"]["polygons"]["external"]}
    assert len(kept["tangle"]["points"]) == MAX_POINTS_PER_POLYGON
    assert kept["tangle"]["area"] == kept["tangle"]["netArea"] == 0


@pytest.mark.parametrize("far", [1e20, 1e308, -1e6])
def test_coordinates_far_outside_the_image_skip_the_polygon_in_every_format_with_a_warning(run_export, make_project,
                                                                                         far):
    project = make_project(2, width=160, height=120)
    stored_long_ago = PolygonData("far", "external", ((10.0, 10.0), (far, 10.0), (far, far), (10.0, 40.0)))
    result = run_export(with_polygons(project, stored_long_ago), **EVERYTHING)
    assert f"{project.images[0].name}: skipped 1 polygon with {FAR_OUTSIDE} (far)" in result.warnings
    with zipfile.ZipFile(result.path) as archive:
        coco = json.loads(archive.read("annotations/coco/annotations.json"))
        assert len(coco["annotations"]) == sum(len(i.externals()) for i in project.images)
        assert f"{project.images[0].stem}_viz.png" in " ".join(archive.namelist())


def test_class_names_with_control_characters_are_replaced_in_every_format_with_a_warning(run_export, make_project):
    project = make_project(1, width=160, height=120)
    cell = PolygonData("odd", "external", SQUARE, class_name="cell\u0001\nline")
    result = run_export(with_polygons(project, cell), **EVERYTHING)
    shown = "cell\ufffd\ufffdline"
    assert f"{project.images[0].name}: replaced control characters in the class names of odd" in result.warnings
    with zipfile.ZipFile(result.path) as archive:
        book = openpyxl.load_workbook(io.BytesIO(archive.read("metrics/metrics.xlsx")))
        classes = {row[4] for row in book["Polygon Metrics"].iter_rows(min_row=2, values_only=True)}
        assert shown in classes
        assert archive.read("annotations/yolo/classes.txt").decode().splitlines() == ["cell", shown]


@pytest.mark.parametrize(("points", "expected"), [
    (((0.0, 0.0), (float("nan"), 1.0), (1.0, 1.0)), NOT_FINITE),
    (((0.0, 0.0), (5.0, 5.0), (10.0, 10.0), (2.0, 2.0)), ZERO_AREA),
    (((0.0, 0.0), (10.0, 10.0), (10.0, 0.0), (0.0, 10.0)), SELF_INTERSECTING),
    (((0.0, 0.0), (-51.0, 0.0), (0.0, 10.0)), FAR_OUTSIDE),
    (((0.0, 0.0), (-50.0, 0.0), (0.0, 150.0)), None),  # half the image's size beyond its edges is near enough
])
def test_defects_are_named_by_cheap_checks(points, expected):
    assert defect(np.array(points), 100, 100) == expected
