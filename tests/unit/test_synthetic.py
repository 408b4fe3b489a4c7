"""Synthetic images are reproducible, and their polygons are well formed and visible."""

from __future__ import annotations

import io
import itertools

import numpy as np
from PIL import Image, ImageDraw
from shapely.geometry import Polygon

from exportd.synthetic import synthetic_image, synthetic_project


def test_the_same_seed_gives_the_same_image_and_polygons():
    assert synthetic_image(7) == synthetic_image(7)
    assert synthetic_image(7) != synthetic_image(8)


def test_every_polygon_is_a_valid_outline_inside_the_image():
    for seed in range(12):
        _, polygons = synthetic_image(seed, width=300, height=200)
        cells = [p for p in polygons if p["type"] == "external"]
        assert 4 <= len(cells) <= 10
        for polygon in polygons:
            assert 24 <= len(polygon["points"]) <= 64
            assert all(0 < x < 300 and 0 < y < 200 for x, y in polygon["points"])
            assert all(round(v, 2) == v for point in polygon["points"] for v in point)
            assert Polygon(polygon["points"]).is_valid
            assert polygon["className"] == "cell"


def test_cells_do_not_overlap():
    _, polygons = synthetic_image(3)
    shapes = [Polygon(p["points"]) for p in polygons if p["type"] == "external"]
    assert all(not a.intersects(b) for a, b in itertools.combinations(shapes, 2))


def test_every_fourth_image_has_a_hole_strictly_inside_its_parent():
    project = list(synthetic_project(count=8))
    with_holes = [name for name, _, polygons in project if any(p["type"] == "internal" for p in polygons)]
    assert with_holes == ["spheroid_04.png", "spheroid_08.png"]
    for _, _, polygons in project:
        by_id = {p["id"]: p for p in polygons}
        for hole in (p for p in polygons if p["type"] == "internal"):
            parent = by_id[hole["parentId"]]
            assert parent["type"] == "external" and parent["parentId"] is None
            assert Polygon(parent["points"]).buffer(-1).contains(Polygon(hole["points"]))


def test_the_png_has_the_requested_size_and_cells_are_brighter_than_background():
    png, polygons = synthetic_image(4, width=320, height=240)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (320, 240)
    inside = Image.new("1", image.size, 0)
    draw = ImageDraw.Draw(inside)
    for polygon in polygons:
        draw.polygon([tuple(p) for p in polygon["points"]], fill=polygon["type"] == "external")
    pixels, mask = np.asarray(image.convert("L"), dtype=float), np.asarray(inside)
    assert pixels[mask].mean() > pixels[~mask].mean() + 60


def test_project_names_images_in_order():
    names = [name for name, _, _ in synthetic_project(count=12)]
    assert names[0] == "spheroid_01.png" and names[-1] == "spheroid_12.png" and len(set(names)) == 12
