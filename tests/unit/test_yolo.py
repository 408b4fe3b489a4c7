"""The YOLO folder is a valid segmentation dataset: parseable lines, normalised coordinates that
give back the polygons, and class names in classes.txt and data.yaml that agree."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import yaml

from exportd.export.source import ImageData, PolygonData, ProjectSnapshot

FOLDER = "annotations/yolo/"


def yolo_files(result) -> dict[str, str]:
    with zipfile.ZipFile(result.path) as archive:
        return {
            name.removeprefix(FOLDER): archive.read(name).decode()
            for name in archive.namelist()
            if name.startswith(FOLDER)
        }


def export_yolo(run_export, project, ctx=None):
    return run_export(
        project, ctx, annotation_formats=["yolo"], metrics_formats=[], include_original_images=False,
        include_visualizations=False, include_documentation=False,
    )


def parse(line: str) -> tuple[int, np.ndarray]:
    values = line.split()
    assert len(values) % 2 == 1 and len(values) >= 7, line  # class and at least 3 points
    return int(values[0]), np.array([float(v) for v in values[1:]]).reshape(-1, 2)


def test_every_line_parses_lies_in_the_unit_square_and_gives_back_the_polygon(run_export, make_project):
    project = make_project(6, width=320, height=200)
    files = yolo_files(export_yolo(run_export, project))
    for image in project.images:
        lines = files[f"{image.stem}.txt"].splitlines()
        cells = image.externals()
        assert len(lines) == len(cells)
        for line, cell in zip(lines, cells, strict=True):
            class_id, points = parse(line)
            assert class_id == 0
            assert ((points >= 0) & (points <= 1)).all()
            back = points * [image.width, image.height]
            np.testing.assert_allclose(back, cell.points, rtol=1e-6, atol=1e-9)


def test_classes_txt_and_data_yaml_name_the_classes_in_first_seen_order(run_export, tmp_path):
    square = ((10.0, 10.0), (40.0, 10.0), (40.0, 40.0), (10.0, 40.0))
    polygons = tuple(
        PolygonData(str(n), "external", tuple((x + 45 * n, y) for x, y in square), class_name=name)
        for n, name in enumerate(["nucleus", "cell: large", "nucleus", 'débris "x"'])
    )
    image = ImageData("i", "plate.png", 200, 60, tmp_path / "plate.png", polygons)
    files = yolo_files(export_yolo(run_export, ProjectSnapshot("p", "P", images=(image,))))
    classes = files["classes.txt"].splitlines()
    assert classes == ["nucleus", "cell: large", 'débris "x"']
    data = yaml.safe_load(files["data.yaml"])
    assert data["nc"] == 3
    assert [data["names"][n] for n in range(3)] == classes
    assert data["train"] == data["val"] == "images"
    assert [parse(line)[0] for line in files["plate.txt"].splitlines()] == [0, 1, 0, 2]


def test_label_files_share_the_stems_of_the_images_in_the_zip(run_export, tmp_path):
    square = PolygonData("c", "external", ((1.0, 1.0), (9.0, 1.0), (9.0, 9.0)))
    images = tuple(
        ImageData(f"i{n}", name, 10, 10, tmp_path / f"{n}.png", (square,))
        for n, name in enumerate(["a.png", "a.jpg", "sub/b.tif"])
    )
    result = run_export(
        ProjectSnapshot("p", "P", images=images), annotation_formats=["yolo", "coco"], metrics_formats=[],
        include_visualizations=False, include_original_images=False, include_documentation=False,
    )
    files = yolo_files(result)
    assert {"a.txt", "a_2.txt", "b.txt"} <= set(files)
    coco = json.loads(zipfile.ZipFile(result.path).read("annotations/coco/annotations.json"))
    assert [i["file_name"] for i in coco["images"]] == ["a.png", "a_2.jpg", "b.tif"]


def test_holes_are_left_out_points_outside_are_clamped_and_empty_images_get_empty_files(
    run_export, tmp_path, make_context
):
    cell = PolygonData("cell", "external", ((-5.0, 10.0), (50.0, 10.0), (50.0, 60.0), (10.0, 60.0)))
    hole = PolygonData("hole", "internal", ((20.0, 20.0), (30.0, 20.0), (30.0, 30.0)), parent_id="cell")
    images = (
        ImageData("i1", "one.png", 40, 50, tmp_path / "one.png", (cell, hole)),
        ImageData("i2", "two.png", 40, 50, tmp_path / "two.png"),
    )
    ctx = make_context()
    files = yolo_files(export_yolo(run_export, ProjectSnapshot("p", "P", images=images), ctx))
    (line,) = files["one.txt"].splitlines()
    _, points = parse(line)
    np.testing.assert_allclose(points, [[0, 0.2], [1, 0.2], [1, 1], [0.25, 1]])
    assert files["two.txt"] == ""
    assert ctx.warnings == ["two.png: no polygons to annotate, measure or draw"]


@pytest.mark.parametrize(
    ("points", "reason"),
    [
        (((0.0, 0.0), (10.0, 0.0)), "fewer than 3 distinct points"),
        (((0.0, 0.0), (5.0, 5.0), (10.0, 10.0)), "zero area"),
        (((0.0, 0.0), (10.0, 10.0), (10.0, 0.0), (0.0, 10.0)), "self-intersecting"),
    ],
)
def test_degenerate_polygons_are_skipped_with_one_warning(run_export, tmp_path, make_context, points, reason):
    good = PolygonData("good", "external", ((20.0, 20.0), (30.0, 20.0), (30.0, 30.0)))
    bad = PolygonData("bad", "external", points)
    image = ImageData("i", "odd.png", 40, 40, tmp_path / "odd.png", (bad, good))
    ctx = make_context()
    files = yolo_files(export_yolo(run_export, ProjectSnapshot("p", "P", images=(image,)), ctx))
    assert len(files["odd.txt"].splitlines()) == 1
    assert len(ctx.warnings) == 1
    assert "odd.png" in ctx.warnings[0] and "bad" in ctx.warnings[0] and reason in ctx.warnings[0]
