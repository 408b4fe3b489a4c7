"""Every metric of a cell matches its analytic value, scales with the micrometre scale, and agrees
with scikit-image's `regionprops` on a rasterised mask."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from shapely import affinity
from shapely.geometry import Polygon
from skimage.measure import regionprops

from exportd.export.measure import MEASURE_NAMES, Measures, measure
from exportd.export.metrics import IDENTITY, MEASURED, image_rows
from exportd.export.source import ImageData, PolygonData
from exportd.synthetic import synthetic_image

TOLERANCE = 0.005  # 0.5 %


def circle(cx: float, cy: float, r: float, points: int = 720) -> Polygon:
    return ellipse(cx, cy, r, r, points=points)


def ellipse(cx: float, cy: float, a: float, b: float, angle: float = 0, points: int = 400) -> Polygon:
    t = np.linspace(0, 2 * math.pi, points, endpoint=False)
    return affinity.rotate(Polygon(np.c_[cx + a * np.cos(t), cy + b * np.sin(t)]), angle)


def square_expected(a: float) -> dict[str, float]:
    return dict(
        area=a * a, perimeter=4 * a, perimeter_with_holes=4 * a, equivalent_diameter=2 * a / math.sqrt(math.pi),
        circularity=math.pi / 4, feret_max=a * math.sqrt(2), feret_min=a, feret_orthogonal=a * math.sqrt(2),
        feret_aspect_ratio=math.sqrt(2), major_axis_length=2 * a / math.sqrt(3), minor_axis_length=2 * a / math.sqrt(3),
        bounding_box_width=a, bounding_box_height=a, extent=1.0, compactness=4 / math.pi, convexity=1.0, solidity=1.0,
        sphericity=math.sqrt(math.pi) / 2,
    )


def circle_expected(r: float) -> dict[str, float]:
    return dict(
        area=math.pi * r * r, perimeter=2 * math.pi * r, perimeter_with_holes=2 * math.pi * r,
        equivalent_diameter=2 * r, circularity=1.0, feret_max=2 * r, feret_min=2 * r, feret_orthogonal=2 * r,
        feret_aspect_ratio=1.0, major_axis_length=2 * r, minor_axis_length=2 * r, bounding_box_width=2 * r,
        bounding_box_height=2 * r, extent=math.pi / 4, compactness=1.0, convexity=1.0, solidity=1.0,
        sphericity=1.0,
    )


def holed_rectangle_expected(w: float, h: float, s: float) -> dict[str, float]:
    """A w × h rectangle (w > h) with a centred s × s square hole."""
    area, perimeter, diagonal = w * h - s * s, 2 * (w + h), math.hypot(w, h)
    var_x = (h * w**3 / 12 - s**4 / 12) / area
    var_y = (w * h**3 / 12 - s**4 / 12) / area
    return dict(
        area=area, perimeter=perimeter, perimeter_with_holes=perimeter + 4 * s,
        equivalent_diameter=math.sqrt(4 * area / math.pi), circularity=4 * math.pi * area / perimeter**2,
        feret_max=diagonal, feret_min=h, feret_orthogonal=2 * w * h / diagonal, feret_aspect_ratio=diagonal / h,
        major_axis_length=4 * math.sqrt(var_x), minor_axis_length=4 * math.sqrt(var_y),
        bounding_box_width=w, bounding_box_height=h, extent=area / (w * h),
        compactness=perimeter**2 / (4 * math.pi * area), convexity=1.0, solidity=area / (w * h),
        sphericity=2 * math.sqrt(math.pi * area) / perimeter,
    )


def l_shape_expected(k: float) -> dict[str, float]:
    """The L of a 3k × 3k square minus the 2k × 2k square in its corner."""
    area, perimeter = 5 * k * k, 12 * k
    hull_area, hull_perimeter = 7 * k * k, (8 + 2 * math.sqrt(2)) * k
    # second moments about the centroid (1.1k, 1.1k): var = 0.7233k², cov = -0.36k²
    var, cov = (2900 / 3 / 500 - 1.21) * k * k, (85 - 121) / 100 * k * k
    return dict(
        area=area, perimeter=perimeter, perimeter_with_holes=perimeter,
        equivalent_diameter=math.sqrt(4 * area / math.pi), circularity=4 * math.pi * area / perimeter**2,
        feret_max=3 * math.sqrt(2) * k, feret_min=2 * math.sqrt(2) * k, feret_orthogonal=2 * math.sqrt(2) * k,
        feret_aspect_ratio=1.5, major_axis_length=4 * math.sqrt(var - cov), minor_axis_length=4 * math.sqrt(var + cov),
        bounding_box_width=3 * k, bounding_box_height=3 * k, extent=area / (9 * k * k),
        compactness=perimeter**2 / (4 * math.pi * area), convexity=hull_perimeter / perimeter,
        solidity=area / hull_area, sphericity=2 * math.sqrt(math.pi * area) / perimeter,
    )


SHAPES = {
    "square": (Polygon([(10, 10), (110, 10), (110, 110), (10, 110)]), square_expected(100)),
    "circle of 720 points": (circle(200, 150, 80), circle_expected(80)),
    "rectangle with a square hole": (
        Polygon([(5, 5), (205, 5), (205, 105), (5, 105)], [[(80, 30), (130, 30), (130, 80), (80, 80)]]),
        holed_rectangle_expected(200, 100, 50),
    ),
    "L-shape": (Polygon([(0, 0), (90, 0), (90, 30), (30, 30), (30, 90), (0, 90)]), l_shape_expected(30)),
}


@pytest.mark.parametrize("name", SHAPES)
def test_every_metric_of_a_shape_with_known_answers_is_within_half_a_percent(name):
    shape, expected = SHAPES[name]
    measured = measure(shape)
    assert set(expected) == set(MEASURE_NAMES)
    for metric, value in expected.items():
        assert getattr(measured, metric) == pytest.approx(value, rel=TOLERANCE), metric


@pytest.mark.parametrize("angle", [17, 30, 45, 71])
def test_metrics_other_than_the_bounding_box_do_not_change_when_the_shape_turns(angle):
    shape = SHAPES["L-shape"][0]
    turned = affinity.rotate(shape, angle, origin=(0, 0))
    upright, rotated = measure(shape), measure(turned)
    for metric in MEASURE_NAMES:
        if metric not in ("bounding_box_width", "bounding_box_height", "extent"):
            assert getattr(rotated, metric) == pytest.approx(getattr(upright, metric), rel=1e-9), metric


def test_circularity_never_exceeds_one_and_ratios_are_consistent():
    for shape, _ in SHAPES.values():
        m = measure(shape)
        assert 0 < m.circularity <= 1
        assert m.compactness == pytest.approx(1 / m.circularity)
        assert m.feret_min <= m.feret_orthogonal <= m.feret_max
        assert 0 < m.convexity <= 1 + 1e-12 and 0 < m.solidity <= 1 + 1e-12
        assert m.sphericity == pytest.approx(math.pi * m.equivalent_diameter / m.perimeter)
        assert m.sphericity == pytest.approx(math.sqrt(m.circularity)) and 0 < m.sphericity <= 1


def test_sphericity_is_one_for_a_circle_root_pi_over_two_for_a_square_and_falls_with_a_hole():
    square, circle_shape, holed = (SHAPES[name][0] for name in ("square", "circle of 720 points",
                                                                 "rectangle with a square hole"))
    assert measure(circle_shape).sphericity == pytest.approx(1.0, abs=1e-4)
    assert measure(square).sphericity == pytest.approx(0.886227, rel=1e-6)  # √π / 2
    # 200 × 100 minus a 50 × 50 hole: A = 17,500, P = 600 (the hole's outline is not in P)
    assert measure(holed).sphericity == pytest.approx(2 * math.sqrt(math.pi * 17_500) / 600, rel=1e-9)
    assert measure(holed).sphericity < measure(Polygon(holed.exterior)).sphericity


def one_cell_image(shape: Polygon, tmp_path) -> ImageData:
    outline = PolygonData("cell", "external", tuple(shape.exterior.coords)[:-1])
    holes = tuple(
        PolygonData(f"hole-{n}", "internal", tuple(ring.coords)[:-1], parent_id="cell")
        for n, ring in enumerate(shape.interiors)
    )
    return ImageData("img", "a.png", 400, 300, tmp_path / "a.png", (outline, *holes))


@pytest.mark.parametrize("scale", [0.25, 1.6, 12.0])
def test_with_a_scale_lengths_scale_by_s_areas_by_s_squared_and_ratios_stay(scale, tmp_path):
    image = one_cell_image(SHAPES["rectangle with a square hole"][0], tmp_path)
    (plain,), _ = image_rows((image, "a.png"), None)
    (scaled,), _ = image_rows((image, "a.png"), scale)
    first = len(IDENTITY)
    assert scaled[:first] == plain[:first]
    for column, px, um in zip(MEASURED, plain[first:], scaled[first:], strict=True):
        factor = {"length": scale, "area": scale**2}.get(column.kind, 1.0)
        assert um == pytest.approx(px * factor, rel=1e-5), column.title


def pixel_centre_mask(shape, pad: int = 4) -> np.ndarray:
    x0, y0, x1, y1 = shape.bounds
    ys, xs = np.mgrid[0 : int(y1) + pad, 0 : int(x1) + pad]
    return shapely.contains_xy(shape, xs + 0.5, ys + 0.5).astype(np.uint8)


def synthetic_cells(count: int) -> list[Polygon]:
    """Cell outlines of the demo images, four times larger so that pixels are small next to them."""
    cells = []
    for seed in range(1, count + 1):
        _, polygons = synthetic_image(seed)
        cells.append(affinity.scale(Polygon(polygons[0]["points"]), 4, 4, origin=(0, 0)))
    return cells


SMOOTH = [circle(100, 100, 60), ellipse(150, 150, 100, 45, angle=25), *synthetic_cells(4)]
STRAIGHT = [SHAPES["rectangle with a square hole"][0], affinity.translate(SHAPES["L-shape"][0], 5, 5)]


@pytest.mark.parametrize("shape", SMOOTH + STRAIGHT)
def test_area_perimeter_and_feret_max_agree_with_regionprops_within_two_percent(shape):
    """`regionprops` estimates the perimeter from pixels: its Crofton estimate is unbiased for
    curved outlines, its 4-neighbour estimate for outlines along the pixel grid."""
    measured = measure(shape)
    props = regionprops(pixel_centre_mask(shape))[0]
    perimeter = props.perimeter_crofton if any(shape is s for s in SMOOTH) else props.perimeter
    assert props.area == pytest.approx(measured.area, rel=0.02)
    assert perimeter == pytest.approx(measured.perimeter_with_holes, rel=0.02)
    assert props.feret_diameter_max == pytest.approx(measured.feret_max, rel=0.02)
    assert props.axis_major_length == pytest.approx(measured.major_axis_length, rel=0.02)
    assert props.axis_minor_length == pytest.approx(measured.minor_axis_length, rel=0.02)


def test_a_hole_that_splits_a_cell_leaves_a_measurable_multipolygon():
    bar = Polygon([(0, 0), (100, 0), (100, 20), (0, 20)]).difference(
        Polygon([(45, -1), (55, -1), (55, 21), (45, 21)])
    )
    measured = measure(bar)
    assert isinstance(measured, Measures)
    assert measured.area == pytest.approx(1800)
    assert measured.perimeter == pytest.approx(2 * (2 * 45 + 2 * 20))
    assert measured.feret_max == pytest.approx(math.hypot(100, 20))
