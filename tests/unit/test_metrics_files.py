"""The metrics files: an Excel workbook with both sheets, a CSV safe to open in a spreadsheet,
and JSON with units, all with the same numbers."""

from __future__ import annotations

import csv
import math
import io
import json
import zipfile

import openpyxl
import pytest

from exportd.export.source import ImageData, PolygonData, ProjectSnapshot

DESIGN_COLUMNS = [
    "Area", "Perimeter", "Perimeter with Holes", "Equivalent Diameter", "Circularity", "Feret Diameter Max",
    "Feret Diameter Min", "Feret Diameter Orthogonal", "Feret Aspect Ratio", "Major Axis Length",
    "Minor Axis Length", "Bounding Box Width", "Bounding Box Height", "Extent", "Compactness", "Convexity",
    "Solidity", "Sphericity",
]
LENGTHS = {"Perimeter", "Perimeter with Holes", "Equivalent Diameter", "Feret Diameter Max", "Feret Diameter Min",
           "Feret Diameter Orthogonal", "Major Axis Length", "Minor Axis Length", "Bounding Box Width",
           "Bounding Box Height"}
HOSTILE = '=HYPERLINK("http://evil.example","click")'


def headers(length: str, area: str) -> list[str]:
    def with_unit(title: str) -> str:
        if title == "Area":
            return f"Area ({area})"
        return f"{title} ({length})" if title in LENGTHS else title

    return ["Image", "Image ID", "Polygon", "Polygon ID", "Class", "Holes", *map(with_unit, DESIGN_COLUMNS)]


def export_metrics(run_export, project, **options):
    result = run_export(
        project, metrics_formats=["excel", "csv", "json"], annotation_formats=[], include_original_images=False,
        include_visualizations=False, include_documentation=False, **options,
    )
    with zipfile.ZipFile(result.path) as archive:
        return (
            openpyxl.load_workbook(io.BytesIO(archive.read("metrics/metrics.xlsx"))),
            list(csv.reader(io.StringIO(archive.read("metrics/metrics.csv").decode("utf-8"), newline=""))),
            json.loads(archive.read("metrics/metrics.json")),
        )


@pytest.fixture
def project(make_project):
    return make_project(4)  # the fourth image has a cell with a hole


def test_the_workbook_has_both_sheets_with_headers_in_pixels_and_one_row_per_cell(run_export, project):
    book, _, _ = export_metrics(run_export, project)
    assert book.sheetnames == ["Polygon Metrics", "Summary"]
    rows = list(book["Polygon Metrics"].values)
    assert list(rows[0]) == headers("px", "px²")
    cells = [(image.id, polygon.id) for image in project.images for polygon in image.externals()]
    assert [(row[1], row[3]) for row in rows[1:]] == cells
    assert all(isinstance(v, int | float) and v > 0 for row in rows[1:] for v in row[6:])
    summary = list(book["Summary"].values)
    assert summary[0][:3] == ("Image", "Image ID", "Polygons")
    assert summary[0][3] == "Mean Area (px²)"
    assert [row[2] for row in summary[1:-1]] == [len(image.externals()) for image in project.images]
    assert summary[-1][:3] == ("All images", None, len(cells))
    first = [row for row in rows[1:] if row[1] == "img-1"]
    assert summary[1][3] == pytest.approx(sum(row[6] for row in first) / len(first), rel=1e-5)


def test_with_a_scale_headers_are_in_micrometres_and_values_scale(run_export, project):
    book_px, _, _ = export_metrics(run_export, project)
    book_um, _, data = export_metrics(run_export, project, pixel_to_micrometer_scale=0.5)
    rows_px, rows_um = list(book_px["Polygon Metrics"].values), list(book_um["Polygon Metrics"].values)
    assert list(rows_um[0]) == headers("µm", "µm²")
    area, perimeter, circularity = 6, 7, 10
    assert rows_um[1][area] == pytest.approx(rows_px[1][area] * 0.25, rel=1e-5)
    assert rows_um[1][perimeter] == pytest.approx(rows_px[1][perimeter] * 0.5, rel=1e-5)
    assert rows_um[1][circularity] == rows_px[1][circularity]
    assert data["units"]["area"] == "µm²" and data["units"]["feretDiameterMax"] == "µm"
    assert "circularity" not in data["units"]


def test_csv_round_trips_through_the_csv_module_with_the_workbooks_numbers(run_export, project):
    book, rows, _ = export_metrics(run_export, project)
    sheet = list(book["Polygon Metrics"].values)
    assert rows[0] == headers("px", "px²")
    assert len(rows) == len(sheet)
    for written, expected in zip(rows[1:], sheet[1:], strict=True):
        assert written[:6] == [str(v) for v in expected[:6]]
        assert [float(v) for v in written[6:]] == list(expected[6:])


def test_json_has_units_one_object_per_cell_and_the_summary(run_export, project):
    book, _, data = export_metrics(run_export, project)
    sheet = list(book["Polygon Metrics"].values)
    assert data["pixelToMicrometerScale"] is None
    assert data["units"]["area"] == "px²" and data["columns"]["area"] == "Area (px²)"
    assert len(data["polygons"]) == len(sheet) - 1
    first = data["polygons"][0]
    assert first["image"] == sheet[1][0] and first["polygonId"] == sheet[1][3]
    assert first["feretDiameterMax"] == sheet[1][headers("px", "px²").index("Feret Diameter Max (px)")]
    assert [i["polygons"] for i in data["images"]] == [len(i.externals()) for i in project.images]
    assert data["allImages"]["polygons"] == len(data["polygons"])


def test_a_formula_in_a_name_is_neutralised_in_csv_and_kept_as_text_in_excel(run_export, tmp_path):
    cell = PolygonData("+cmd|' /C calc'!A0", "external", ((1.0, 1.0), (20.0, 1.0), (20.0, 20.0)), class_name=HOSTILE)
    image = ImageData("@img", "-danger.png", 32, 32, tmp_path / "x.png", (cell,))
    book, rows, data = export_metrics(run_export, ProjectSnapshot("p", "P", images=(image,)))
    assert rows[1][:5] == ["'-danger.png", "'@img", "1", "'+cmd|' /C calc'!A0", "'" + HOSTILE]
    assert not any(v.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for v in row)
    excel = book["Polygon Metrics"]
    assert excel.cell(row=2, column=5).value == HOSTILE
    assert excel.cell(row=2, column=5).data_type == "s"  # text, not a formula
    assert data["polygons"][0]["class"] == HOSTILE  # JSON is data, not a spreadsheet


def test_cells_with_holes_count_them_and_degenerate_polygons_have_no_row(run_export, tmp_path, make_context):
    square = ((0.0, 0.0), (40.0, 0.0), (40.0, 40.0), (0.0, 40.0))
    polygons = (
        PolygonData("cell", "external", square),
        PolygonData("hole", "internal", ((10.0, 10.0), (20.0, 10.0), (20.0, 20.0), (10.0, 20.0)), "cell"),
        PolygonData("bow", "external", ((50.0, 0.0), (60.0, 10.0), (60.0, 0.0), (50.0, 10.0))),
    )
    ctx = make_context()
    result = run_export(
        ProjectSnapshot("p", "P", images=(ImageData("i", "a.png", 64, 64, tmp_path / "a.png", polygons),)), ctx,
        metrics_formats=["json"], annotation_formats=[], include_original_images=False,
        include_visualizations=False, include_documentation=False,
    )
    data = json.loads(zipfile.ZipFile(result.path).read("metrics/metrics.json"))
    (row,) = data["polygons"]
    assert (row["polygon"], row["holes"], row["area"], row["perimeterWithHoles"]) == (1, 1, 1500.0, 200.0)
    assert ctx.warnings == ["a.png: skipped 1 polygon with a self-intersecting outline (bow)"]


def three_shapes(tmp_path) -> ProjectSnapshot:
    """One image: a 60 × 60 square, a 720-point circle of radius 40, a 100 × 50 rectangle with a 20 × 20 hole."""
    t = [2 * math.pi * k / 720 for k in range(720)]
    polygons = (
        PolygonData("square", "external", ((10.0, 10.0), (70.0, 10.0), (70.0, 70.0), (10.0, 70.0))),
        PolygonData("circle", "external", tuple((150 + 40 * math.cos(a), 60 + 40 * math.sin(a)) for a in t)),
        PolygonData("holed", "external", ((10.0, 120.0), (110.0, 120.0), (110.0, 170.0), (10.0, 170.0))),
        PolygonData("hole", "internal", ((50.0, 135.0), (70.0, 135.0), (70.0, 155.0), (50.0, 155.0)), "holed"),
    )
    return ProjectSnapshot("p", "P", images=(ImageData("i", "a.png", 200, 200, tmp_path / "a.png", polygons),))


def test_sphericity_is_in_every_metrics_format_and_the_summary_has_min_and_max_area(run_export, tmp_path):
    book, rows, data = export_metrics(run_export, three_shapes(tmp_path))
    expected = {"square": math.sqrt(math.pi) / 2, "circle": 1.0,
                "holed": 2 * math.sqrt(math.pi * (100 * 50 - 20 * 20)) / 300}
    sheet = list(book["Polygon Metrics"].values)
    column = sheet[0].index("Sphericity")
    assert rows[0][column] == "Sphericity"
    for excel_row, csv_row, obj in zip(sheet[1:], rows[1:], data["polygons"], strict=True):
        want = expected[excel_row[3]]
        assert excel_row[column] == pytest.approx(want, rel=1e-4)
        assert float(csv_row[column]) == excel_row[column] and obj["sphericity"] == excel_row[column]

    summary = list(book["Summary"].values)
    heads = list(summary[0])
    assert heads[3:6] == ["Mean Area (px²)", "Min Area (px²)", "Max Area (px²)"]
    assert "Mean Sphericity" in heads
    areas = [row[sheet[0].index("Area (px²)")] for row in sheet[1:]]
    circle_area = 720 / 2 * 40**2 * math.sin(2 * math.pi / 720)  # the 720-gon's, a little under π · 40²
    assert min(areas) == 3600 and max(areas) == pytest.approx(circle_area, rel=1e-5)
    for row in summary[1:]:  # the image, then all images: the same single image
        assert row[4] == min(areas) and row[5] == max(areas)
        assert row[heads.index("Mean Sphericity")] == pytest.approx(sum(expected.values()) / 3, rel=1e-4)
    assert data["images"][0]["minArea"] == min(areas) and data["images"][0]["maxArea"] == max(areas)
    assert data["allImages"]["minArea"] == min(areas) and data["allImages"]["sphericity"] == summary[-1][-1]


def test_the_metrics_guide_defines_sphericity_and_the_summary_areas(run_export, project):
    result = run_export(project, metrics_formats=["excel"], annotation_formats=[], include_original_images=False,
                        include_visualizations=False)
    with zipfile.ZipFile(result.path) as archive:
        guide = archive.read("documentation/metrics_guide.md").decode()
    assert "| Sphericity | – | 2√(πA)/P" in guide
    assert "`Sphericity`" in guide and "smallest and largest Area" in guide
