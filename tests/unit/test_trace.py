"""Tracing label images: outlines that rasterise back to exactly the labels' pixels, holes included."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.measure import label

from exportd.export.raster import rasterize
from exportd.imports.labels import label_polygons
from exportd.imports.matching import match_labels
from exportd.imports.trace import boxes, regions


def repainted(labels: np.ndarray, max_points: int | None = None) -> np.ndarray:
    height, width = labels.shape
    out = np.zeros_like(labels)
    for region in regions(labels, max_points=max_points):
        inside = rasterize([region.outline], height, width).astype(bool)
        for hole in region.holes:
            inside &= ~rasterize([hole], height, width).astype(bool)
        assert not out[inside].any(), "two regions claim the same pixel"
        out[inside] = region.label
    return out


@pytest.mark.parametrize("seed", range(12))
def test_random_label_images_trace_back_to_the_same_pixels(seed):
    rng = np.random.default_rng(seed)
    blobs = rng.random((40, 50)) < 0.45  # ragged shapes: holes, islands in holes, diagonal contacts, borders
    labels = label(blobs, connectivity=2).astype(np.uint16)
    assert (repainted(labels) == labels).all()


def test_a_label_touching_only_diagonally_is_one_cell_and_a_split_label_is_one_cell_per_part():
    labels = np.zeros((10, 10), np.uint8)
    labels[2, 2] = labels[3, 3] = 1  # 8-connected: one part
    labels[6, 1] = labels[6, 8] = 2  # two parts
    polygons, warnings = label_polygons(labels)
    assert [p["id"] for p in polygons] == ["label-1", "label-2", "label-2.2"]
    assert warnings == ["label 2 has separate parts; each part is a cell"]


def test_an_island_inside_a_hole_is_its_own_cell_and_the_hole_belongs_to_the_ring():
    labels = np.zeros((20, 20), np.uint8)
    labels[2:18, 2:18] = 1
    labels[6:14, 6:14] = 0
    labels[9:11, 9:11] = 2
    found = list(regions(labels))
    assert [(r.label, len(r.holes)) for r in found] == [(1, 1), (2, 0)]
    assert (repainted(labels) == labels).all()
    ring = found[0]
    assert ring.outline[:, 0].min() == 2 and ring.outline[:, 0].max() == 18  # along the pixels' edges
    assert ring.holes[0][:, 0].min() == 6 and ring.holes[0][:, 0].max() == 14


def test_an_outline_over_its_point_budget_is_simplified_and_says_so():
    yy, xx = np.mgrid[:200, :200]
    labels = (((xx - 100) ** 2 + (yy - 100) ** 2) < 90**2).astype(np.uint8)
    exact = next(regions(labels))
    coarse = next(regions(labels, max_points=40))
    assert len(exact.outline) > 40 >= len(coarse.outline) and coarse.tolerance > exact.tolerance
    _, warnings = label_polygons(labels, max_points=40)
    assert warnings == ["label 1 simplified to at most 40 points per outline"]


def test_label_images_match_their_images_by_stem_and_known_suffixes():
    matched = match_labels(["a.png", "b.tif", "c.jpg"], ["a.tif", "b_cp_masks.png", "c_masks.tif", "d.png"])
    assert matched == {"a.tif": "a.png", "b_cp_masks.png": "b.tif", "c_masks.tif": "c.jpg"}


def test_an_image_over_its_point_budget_is_simplified_as_a_whole_and_says_so():
    yy, xx = np.mgrid[:200, :300]
    labels = np.zeros((200, 300), np.uint16)
    for number, (cy, cx) in enumerate([(60, 60), (60, 180), (140, 120), (150, 250)], 1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 < 45**2] = number  # round cells, the last two touching
    labels[55:65, 55:65] = 0  # a hole
    exact, _ = label_polygons(labels)
    total = sum(len(p["points"]) for p in exact)
    budget = total // 2
    fitted, warnings = label_polygons(labels, max_image_points=budget)
    assert sum(len(p["points"]) for p in fitted) <= budget
    assert [p["id"] for p in fitted] == [p["id"] for p in exact]  # every cell and hole kept
    assert all(len(p["points"]) >= 3 for p in fitted)
    assert any(w.startswith("outlines simplified with a tolerance of") and f"to fit {budget} points" in w
               for w in warnings)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32])
def test_each_labels_box_is_the_one_scipy_finds(dtype):
    from scipy import ndimage

    rng = np.random.default_rng(int(np.dtype(dtype).itemsize))
    for _ in range(400):
        height, width = (int(n) for n in rng.integers(1, 40, 2))
        labels = np.zeros((height, width), dtype)
        for _ in range(int(rng.integers(0, 15))):
            top, left = rng.integers(0, height), rng.integers(0, width)
            labels[top:top + rng.integers(1, 10), left:left + rng.integers(1, 10)] = rng.integers(1, 200)
        for image in (labels, labels.T):  # .T: not C-contiguous
            expected = [(n, box) for n, box in enumerate(ndimage.find_objects(image), 1) if box is not None]
            assert list(boxes(image)) == expected
