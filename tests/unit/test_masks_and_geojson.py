"""The masks and GeoJSON formats: label TIFFs that re-import to the same cells, and GeoJSON that
shapely and the `geojson` package accept, with holes kept and the areas of the cells."""

from __future__ import annotations

import io
import json
import zipfile

import geojson
import numpy as np
import shapely
import tifffile
from shapely.geometry import shape

from exportd.export.geometry import cells_of
from exportd.export import masks
from exportd.export.masks import label_image
from exportd.export.raster import Window, cell_mask
from exportd.export.source import ImageData, PolygonData, ProjectSnapshot
from exportd.imports.labels import label_polygons


def export_formats(run_export, project, *formats):
    result = run_export(project, None, annotation_formats=list(formats), metrics_formats=[],
                        include_original_images=False, include_visualizations=False, include_documentation=True)
    with zipfile.ZipFile(result.path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / (a | b).sum()


def test_exported_masks_are_16_bit_labels_that_reimport_to_the_same_cells(run_export, make_project):
    project = make_project(8, width=320, height=200)  # seeds 4 and 8 have a cell with a hole
    files = export_formats(run_export, project, "masks")
    assert any(len(image.polygons) > len(image.externals()) for image in project.images)
    for image in project.images:
        labels = tifffile.imread(io.BytesIO(files[f"masks/{image.stem}.tif"]))
        assert labels.dtype == np.uint16 and labels.shape == (image.height, image.width)
        cells, _ = cells_of(image)
        assert set(np.unique(labels)) == {0, *(cell.number for cell in cells)}
        traced, _ = label_polygons(labels)
        again = ImageData("again", image.name, image.width, image.height, image.path,
                          tuple(PolygonData(p["id"], p["kind"], p["points"], p["parent_id"]) for p in traced))
        relabelled = label_image(again)[0]
        assert len(cells_of(again)[0]) == len(cells)
        for cell in cells:  # each cell comes back whole: the traced outline covers the same pixels
            original = labels == cell.number
            back = relabelled == relabelled[original][0]
            assert iou(original, back) >= 0.98
            assert iou(original, back) == 1.0  # tracing is exact at pixel centres
    assert "Masks: `masks/<image stem>.tif`" in files["documentation/README.md"].decode()


def test_holes_are_background_and_more_than_65535_cells_make_a_32_bit_mask(tmp_path, monkeypatch):
    ring = PolygonData("c", "external", ((2, 2), (12, 2), (12, 12), (2, 12)))
    hole = PolygonData("h", "internal", ((5, 5), (9, 5), (9, 9), (5, 9)), parent_id="c")
    labels, _ = label_image(ImageData("i", "i.png", 16, 16, tmp_path / "i.png", (ring, hole)))
    assert labels[3, 3] == 1 and labels[7, 7] == 0 and (labels == 1).sum() == 100 - 16

    assert masks.MAX_16_BIT == np.iinfo(np.uint16).max
    monkeypatch.setattr(masks, "MAX_16_BIT", 15)  # 65,536 cells take seconds to build; the rule is the same
    for count, dtype in ((15, np.uint16), (16, np.uint32)):
        grid = tuple(PolygonData(str(n), "external", ((x, y), (x + 1, y), (x + 1, y + 1), (x, y + 1)))
                     for n, (y, x) in enumerate(np.ndindex(4, 4)) if n < count)
        labels, _ = label_image(ImageData("m", "m.png", 4, 4, tmp_path / "m.png", grid))
        assert labels.dtype == dtype and (labels.ravel()[:count] == np.arange(1, count + 1)).all()


def test_overlapping_cells_are_painted_in_order_with_a_warning(tmp_path):
    first = PolygonData("a", "external", ((0, 0), (10, 0), (10, 10), (0, 10)))
    second = PolygonData("b", "external", ((5, 0), (15, 0), (15, 10), (5, 10)))
    labels, warnings = label_image(ImageData("i", "i.png", 20, 10, tmp_path / "i.png", (first, second)))
    assert (labels[:, 5:15] == 2).all() and (labels[:, :5] == 1).all()
    assert warnings == ["i.png: cells 2 overlap earlier cells; in the mask the later cell's pixels win"]


def test_labels_painted_band_by_band_make_the_same_tiff_as_the_whole_array_at_once(tmp_path, monkeypatch):
    """Bands of a few rows cut every cell, hole and overlap many times; the file must not change."""
    rng = np.random.default_rng(7)
    angles = np.linspace(0, 2 * np.pi, 37, endpoint=False)
    polygons = []
    for n in range(12):
        cx, cy, r = rng.uniform(-10, 130), rng.uniform(-10, 90), rng.uniform(3, 40)
        polygons.append(PolygonData(f"c{n}", "external", np.c_[cx + r * np.cos(angles), cy + r * np.sin(angles)]))
        if n % 3 == 0:
            polygons.append(PolygonData(f"h{n}", "internal", np.c_[cx + r / 3 * np.cos(angles),
                                                                 cy + r / 3 * np.sin(angles)], parent_id=f"c{n}"))
    image = ImageData("i", "i.png", 121, 83, tmp_path / "i.png", tuple(polygons))
    whole, whole_warnings = label_image(image)  # 121 x 83 fits in one band
    assert masks.BAND_PIXELS > whole.size and "overlap earlier cells" in whole_warnings[-1]
    painted = np.zeros_like(whole)
    for cell in cells_of(image)[0]:  # each cell over the whole image, in order
        painted[cell_mask(cell, Window(0, 0, 83, 121))] = cell.number
    assert (whole == painted).all()
    expected = io.BytesIO()
    tifffile.imwrite(expected, whole, compression="zlib", metadata=None)

    monkeypatch.setattr(masks, "STRIP_BYTES", 2 * 121 * 3)  # strips of 3 rows
    monkeypatch.setattr(masks, "BAND_PIXELS", 121 * 7)  # bands of 2 strips
    banded, warnings = label_image(image)
    assert (banded == whole).all() and warnings == whole_warnings
    data, warnings = masks.image_mask(image)
    assert warnings == whole_warnings and (tifffile.imread(io.BytesIO(data)) == whole).all()
    with tifffile.TiffFile(io.BytesIO(data)) as tiff:
        assert tiff.pages[0].rowsperstrip == 3 and len(tiff.pages[0].dataoffsets) == 28
    monkeypatch.setattr(masks, "STRIP_BYTES", 1 << 18)
    assert masks.image_mask(image) == (expected.getvalue(), whole_warnings)  # byte for byte, with tifffile's strips


def test_geojson_is_a_valid_feature_collection_with_holes_classes_and_the_cells_areas(run_export, make_project):
    project = make_project(8, width=320, height=200)
    files = export_formats(run_export, project, "geojson")
    holes_seen = 0
    for image in project.images:
        text = files[f"annotations/geojson/{image.stem}.geojson"].decode()
        collection = geojson.loads(text)
        assert collection.is_valid, collection.errors()
        assert collection["type"] == "FeatureCollection"
        cells, _ = cells_of(image)
        assert [f["properties"]["name"] for f in collection["features"]] == [f"Cell {c.number}" for c in cells]
        for feature, cell in zip(collection["features"], cells, strict=True):
            assert feature["geometry"]["type"] == "Polygon"
            assert feature["properties"]["objectType"] == "annotation"
            assert feature["properties"]["classification"]["name"] == "cell"
            geometry = shape(feature["geometry"])
            assert geometry.is_valid
            assert len(geometry.interiors) == len(cell.holes)
            holes_seen += len(geometry.interiors)
            assert abs(geometry.area - cell.shape.area) < 1e-9
            assert shapely.equals(geometry, cell.shape)
            assert geometry.exterior.is_ccw  # RFC 7946: exterior counter-clockwise
    assert holes_seen >= 1


def test_geojson_keeps_class_names_and_a_cell_cut_in_two_by_its_hole(run_export, tmp_path):
    square = PolygonData("a", "external", ((0, 0), (30, 0), (30, 30), (0, 30)), class_name="nucleus µ")
    band = PolygonData("h", "internal", ((-1, 10), (31, 10), (31, 20), (-1, 20)), parent_id="a")
    path = tmp_path / "x.png"
    path.write_bytes(b"")
    project = ProjectSnapshot("p", "P", images=(ImageData("x", "x.png", 40, 40, path, (square, band)),))
    files = export_formats(run_export, project, "geojson", "masks")
    feature = json.loads(files["annotations/geojson/x.geojson"])["features"][0]
    assert feature["properties"]["classification"]["name"] == "nucleus µ"
    assert feature["geometry"]["type"] == "MultiPolygon" and shape(feature["geometry"]).area == 600
