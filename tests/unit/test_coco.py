"""The COCO file loads in pycocotools and its masks match the polygons, holes included."""

from __future__ import annotations

import zipfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import shapely
from PIL import Image as PILImage
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from shapely.geometry import Polygon

from exportd.domain.options import ExportOptions
from exportd.export.pipeline import build_export
from exportd.export.raster import Window, rasterize, rle_counts
from exportd.export.source import ImageData, PolygonData, ProjectSnapshot
from exportd.synthetic import synthetic_project

GENERATED_AT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)

# pycocotools 2.0 predates numpy 2's `copy` keyword; the warning is about its code, not ours
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


class FakeContext:
    """Records what the pipeline reports; never cancels."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def raise_if_cancelled(self) -> None:
        pass

    def advance(self, stage: str, current: int, total: int, percent: float, message: str = "",
                item: str = "") -> None:
        pass

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def item_done(self) -> None:
        pass


def polygon_from_api(data: dict) -> PolygonData:
    return PolygonData(
        id=data["id"],
        kind=data["type"],
        points=tuple((x, y) for x, y in data["points"]),
        parent_id=data["parentId"],
        class_name=data["className"],
    )


def synthetic_snapshot(folder: Path, count: int, seed: int = 0) -> ProjectSnapshot:
    images = []
    for number, (name, png, polygons) in enumerate(synthetic_project(count, seed), 1):
        path = folder / name
        path.write_bytes(png)
        images.append(
            ImageData(f"img-{number}", name, 512, 384, path, tuple(polygon_from_api(p) for p in polygons))
        )
    return ProjectSnapshot(id="p-1", name="Demo spheroids", images=tuple(images))


def export_coco(tmp_path: Path, project: ProjectSnapshot, ctx: FakeContext | None = None) -> COCO:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    options = ExportOptions(
        annotation_formats=["coco"], metrics_formats=[], include_visualizations=False, include_documentation=False
    )
    ctx = ctx or FakeContext()
    result = build_export(project, options, out, job_id="job1", generated_at=GENERATED_AT, ctx=ctx)
    target = tmp_path / "annotations.json"
    with zipfile.ZipFile(result.path) as archive:
        target.write_bytes(archive.read("annotations/coco/annotations.json"))
    return COCO(str(target))


def annotations_by_polygon(coco: COCO, project: ProjectSnapshot) -> dict[str, dict]:
    """Annotation ids run 1, 2, ... over the external polygons, in project order."""
    polygons = [polygon.id for image in project.images for polygon in image.externals()]
    return dict(zip(polygons, (coco.anns[i] for i in sorted(coco.anns)), strict=True))


def cell_minus_holes(image: ImageData, polygon: PolygonData):
    shape = Polygon(polygon.points)
    for hole in image.holes_of(polygon.id):
        shape = shape.difference(Polygon(hole.points))
    return shape


def pixel_centre_mask(shape, height: int, width: int) -> np.ndarray:
    """Rasterise independently: a pixel is in when shapely says its centre is."""
    ys, xs = np.mgrid[0:height, 0:width]
    return shapely.contains_xy(shape, xs + 0.5, ys + 0.5).astype(np.uint8)


@pytest.fixture
def project(tmp_path: Path) -> ProjectSnapshot:
    folder = tmp_path / "images"
    folder.mkdir()
    return synthetic_snapshot(folder, count=5)  # spheroid_04 has a hole


def test_every_mask_has_the_area_and_shape_of_its_polygon_minus_holes(tmp_path, project):
    coco = export_coco(tmp_path, project)
    annotations = annotations_by_polygon(coco, project)
    for image in project.images:
        for polygon in image.externals():
            ann = annotations[polygon.id]
            shape = cell_minus_holes(image, polygon)
            mask = coco.annToMask(ann)
            assert ann["area"] == pytest.approx(shape.area, abs=0.01)
            assert mask.sum() == pytest.approx(shape.area, rel=0.01)
            expected = pixel_centre_mask(shape, image.height, image.width)
            iou = (mask & expected).sum() / (mask | expected).sum()
            assert iou >= 0.98, f"{image.name} {polygon.id}: IoU {iou:.3f}"


def test_images_categories_and_annotations_refer_to_each_other_consistently(tmp_path, project):
    coco = export_coco(tmp_path, project)
    assert [coco.imgs[i]["file_name"] for i in sorted(coco.imgs)] == [image.name for image in project.images]
    assert sorted(coco.imgs) == list(range(1, len(project.images) + 1))
    assert all((img["width"], img["height"]) == (512, 384) for img in coco.imgs.values())
    # one class: the replaced platform's single category, as CVAT shows it
    assert coco.dataset["categories"] == [{"id": 1, "name": "cell", "supercategory": "biological",
                                           "color": [0, 255, 0]}]
    for image_id, image in enumerate(project.images, 1):
        assert len(coco.getAnnIds(imgIds=[image_id])) == len(image.externals())
    holed = {p.parent_id for image in project.images for p in image.polygons if p.kind == "internal"}
    assert holed  # the fixture has a cell with a hole
    for polygon_id, ann in annotations_by_polygon(coco, project).items():
        x, y, w, h = ann["bbox"]
        assert ann["iscrowd"] == 0 and ann["category_id"] == 1
        assert 0 <= x and 0 <= y and x + w <= 512 and y + h <= 384
        assert ann["attributes"] == {"type": "external", "has_holes": polygon_id in holed}


def test_with_the_zips_images_folder_as_root_every_file_name_opens(tmp_path, project):
    out = tmp_path / "out"
    out.mkdir()
    options = ExportOptions(annotation_formats=["coco"], metrics_formats=[], include_visualizations=False,
                            include_documentation=False)
    result = build_export(project, options, out, job_id="job1", generated_at=GENERATED_AT, ctx=FakeContext())
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(result.path) as archive:
        archive.extractall(unpacked)
    coco = COCO(str(unpacked / "annotations/coco/annotations.json"))
    root = unpacked / "images"  # what a COCO loader or CVAT is given as the image root
    for image in coco.loadImgs(coco.getImgIds()):
        path = root / image["file_name"]
        assert path.is_file(), image["file_name"]
        with PILImage.open(path) as opened:
            assert opened.size == (image["width"], image["height"])


def test_categories_follow_class_names_in_first_seen_order(tmp_path):
    square = ((10.0, 10.0), (40.0, 10.0), (40.0, 40.0), (10.0, 40.0))
    shifted = tuple((x + 50, y) for x, y in square)
    image = ImageData(
        "i1", "a.png", 100, 60, tmp_path / "a.png",
        (
            PolygonData("a", "external", square, class_name="debris"),
            PolygonData("b", "external", shifted, class_name="cell"),
            PolygonData("c", "external", tuple((x, y + 10) for x, y in square), class_name="debris"),
        ),
    )
    (tmp_path / "a.png").write_bytes(b"not read by the COCO writer")
    coco = export_coco(tmp_path, ProjectSnapshot("p", "P", images=(image,)))
    assert [(c["id"], c["name"]) for c in coco.dataset["categories"]] == [(1, "debris"), (2, "cell")]
    assert {c["supercategory"] for c in coco.dataset["categories"]} == {"biological"}
    assert coco.dataset["categories"][0]["color"] != coco.dataset["categories"][1]["color"]
    assert [coco.anns[i]["category_id"] for i in sorted(coco.anns)] == [1, 2, 1]


def test_a_cell_with_a_hole_is_an_rle_mask_with_the_hole_empty(tmp_path, project):
    coco = export_coco(tmp_path, project)
    image = next(i for i in project.images if any(p.kind == "internal" for p in i.polygons))
    hole = next(p for p in image.polygons if p.kind == "internal")
    ann = annotations_by_polygon(coco, project)[hole.parent_id]
    assert isinstance(ann["segmentation"], dict)
    assert ann["segmentation"]["size"] == [image.height, image.width]
    assert isinstance(ann["segmentation"]["counts"], list)
    mask = coco.annToMask(ann)
    hole_pixels = pixel_centre_mask(Polygon(hole.points), image.height, image.width)
    assert hole_pixels.sum() > 20
    assert (mask & hole_pixels).sum() == 0
    parent = next(p for p in image.polygons if p.id == hole.parent_id)
    assert mask.sum() == pytest.approx(Polygon(parent.points).area - Polygon(hole.points).area, rel=0.01)


def test_a_cell_without_holes_stays_a_polygon(tmp_path, project):
    coco = export_coco(tmp_path, project)
    first = project.images[0].externals()[0]
    segmentation = coco.anns[1]["segmentation"]
    assert segmentation == [[round(v, 2) for point in first.points for v in point]]


def test_degenerate_polygons_are_left_out_with_a_warning_naming_the_image(tmp_path):
    good = ((10.0, 10.0), (30.0, 10.0), (30.0, 30.0))
    image = ImageData(
        "i1", "odd.png", 64, 64, tmp_path / "odd.png",
        (
            PolygonData("line", "external", ((1.0, 1.0), (5.0, 5.0))),
            PolygonData("flat", "external", ((1.0, 1.0), (2.0, 2.0), (3.0, 3.0))),
            PolygonData("ok", "external", good),
        ),
    )
    (tmp_path / "odd.png").write_bytes(b"")
    ctx = FakeContext()
    coco = export_coco(tmp_path, ProjectSnapshot("p", "P", images=(image,)), ctx)
    assert len(coco.anns) == 1
    assert coco.anns[1]["area"] == pytest.approx(200.0)
    assert len(ctx.warnings) == 2
    assert all("odd.png" in w for w in ctx.warnings)
    assert any("line" in w for w in ctx.warnings) and any("flat" in w for w in ctx.warnings)


def full_image_rle(image: ImageData, polygon: PolygonData) -> bytes:
    """pycocotools' own RLE of the cell rasterised over the whole image (the pixel rule of `rasterize`)."""
    mask = rasterize([polygon.points], image.height, image.width).astype(bool)
    for hole in image.holes_of(polygon.id):
        mask &= ~rasterize([hole.points], image.height, image.width).astype(bool)
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"]


def square(x0: float, y0: float, x1: float, y1: float) -> tuple[tuple[float, float], ...]:
    return (x0, y0), (x1, y0), (x1, y1), (x0, y1)


@pytest.mark.parametrize("outline", [
    square(10.3, 8.7, 30.2, 25.1),    # inside the image
    square(-12.0, -9.0, 20.5, 14.5),  # over the top-left corner
    square(40.5, 30.5, 70.0, 60.0),   # over the bottom-right corner: the last run is the cell's
    square(15.0, -5.0, 35.0, 45.0),   # every row: runs meet across columns
    square(-5.0, -5.0, 70.0, 45.0),  # the whole image
    ((0.0, 0.0), (64.0, 40.0), (0.0, 40.0)),  # a triangle on the left and bottom edges
], ids=["inside", "top-left", "bottom-right", "full-height", "whole-image", "triangle-on-edges"])
def test_a_holed_cells_rle_built_in_its_box_equals_pycocotools_encoding_of_the_full_image_mask(tmp_path, outline):
    width, height = 64, 40
    xs, ys = [x for x, _ in outline], [y for _, y in outline]
    cx, cy = (max(min(xs), 0) + min(max(xs), width)) / 2, (max(min(ys), 0) + min(max(ys), height)) / 2
    cell = PolygonData("c", "external", outline)
    hole = PolygonData("h", "internal", square(cx - 3.2, cy - 2.6, cx + 2.9, cy + 3.1), parent_id="c")
    image = ImageData("i", "i.png", width, height, tmp_path / "i.png", (cell, hole))
    (tmp_path / "i.png").write_bytes(b"")
    coco = export_coco(tmp_path, ProjectSnapshot("p", "P", images=(image,)))
    segmentation = coco.anns[1]["segmentation"]
    assert segmentation["size"] == [height, width]
    ours = mask_utils.frPyObjects(segmentation, height, width)["counts"]
    assert ours == full_image_rle(image, cell)


@pytest.mark.parametrize("seed", range(8))
def test_rle_counts_of_any_window_equal_pycocotools_encoding_of_the_image(seed):
    rng = np.random.default_rng(seed)
    height, width = rng.integers(1, 12, size=2)
    top, bottom = sorted(rng.integers(0, height + 1, size=2))
    left, right = sorted(rng.integers(0, width + 1, size=2))
    if seed % 2:  # every row, so that runs meet across columns
        top, bottom = 0, height
    full = np.zeros((height, width), dtype=np.uint8)
    full[top:bottom, left:right] = rng.random((bottom - top, right - left)) > 0.3
    window = Window(int(top), int(left), int(bottom), int(right))
    counts = rle_counts(full[window.slices].astype(bool), window, int(height), int(width))
    expected = mask_utils.encode(np.asfortranarray(full))["counts"]
    assert mask_utils.frPyObjects({"size": [int(height), int(width)], "counts": counts},
                                  int(height), int(width))["counts"] == expected


@pytest.mark.parametrize("seed", range(6))
def test_a_holed_cells_rle_from_bands_of_bits_equals_pycocotools_encoding_whatever_the_bands(tmp_path, monkeypatch,
                                                                                           seed):
    """The cell's mask is filled a band of rows at a time, kept as bits and read a strip of columns at a
    time; bands of a few rows and strips of 8 columns must not change a count."""
    from exportd.export import raster
    from exportd.export.geometry import cells_of
    from exportd.export.raster import cell_rle_counts, window_of

    rng = np.random.default_rng(seed)
    width, height = int(rng.integers(30, 90)), int(rng.integers(30, 90))
    angles = np.linspace(0, 2 * np.pi, 33, endpoint=False)
    cx, cy, radius = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(8, 0.35 * min(width, height))
    wobble = 1 + 0.3 * np.sin(5 * angles + seed)
    cell = PolygonData("c", "external", np.c_[cx + radius * wobble * np.cos(angles), cy + radius * np.sin(angles)])
    hole = PolygonData("h", "internal", np.c_[cx + radius / 3 * np.cos(angles), cy + radius / 4 * np.sin(angles)],
                       parent_id="c")
    image = ImageData("i", "i.png", width, height, tmp_path / "i.png", (cell, hole))
    [holed], _ = cells_of(image)
    window = window_of(holed.polygon.points, height, width)
    expected = full_image_rle(image, cell)
    for cells in (1 << 18, 3 * width, 50):  # one band; bands of 3 rows; strips of 8 columns
        monkeypatch.setattr(raster, "BAND_CELLS", cells)
        counts = cell_rle_counts(holed, window, height, width)
        assert mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)["counts"] \
            == expected, cells
