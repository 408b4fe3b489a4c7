"""Visualizations have the original's size and differ from it exactly where polygons are drawn,
in the colours, stroke width, fill opacity and numbering asked for."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import shapely
from PIL import Image
from shapely.geometry import Polygon

from tests.unit.conftest import RecordingContext

STROKE = 3


def overlays(run_export, project, **style) -> dict[str, np.ndarray]:
    options = {"show_numbers": False, "stroke_width": STROKE, **style}
    result = run_export(
        project, include_original_images=False, include_documentation=False, annotation_formats=[],
        metrics_formats=[], include_visualizations=True, visualization_options=options,
    )
    with zipfile.ZipFile(result.path) as archive:
        return {
            name.removeprefix("visualizations/"): np.asarray(Image.open(io.BytesIO(archive.read(name))))
            for name in archive.namelist()
            if name.startswith("visualizations/")
        }


def original(image) -> np.ndarray:
    return np.asarray(Image.open(image.path).convert("RGB"))


def distance_to_outlines(image) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel centre: the distance to the nearest outline, and whether it lies in a polygon."""
    rings = shapely.union_all([Polygon(p.points).exterior for p in image.polygons])
    regions = shapely.union_all([Polygon(p.points) for p in image.polygons])
    ys, xs = np.mgrid[0 : image.height, 0 : image.width]
    centres = shapely.points(xs + 0.5, ys + 0.5)
    return shapely.distance(rings, centres), shapely.contains(regions, centres)


@pytest.fixture
def project(make_project):
    return make_project(4, width=256, height=192)  # the fourth image has a cell with a hole


def test_each_overlay_is_an_rgb_png_of_the_original_size(run_export, project):
    drawn = overlays(run_export, project)
    assert sorted(drawn) == [f"{image.stem}_viz.png" for image in project.images]
    for image in project.images:
        assert drawn[f"{image.stem}_viz.png"].shape == (image.height, image.width, 3)


def test_an_overlay_differs_from_the_original_exactly_where_polygons_are_drawn(run_export, project):
    drawn = overlays(run_export, project)
    for image in project.images:
        changed = (drawn[f"{image.stem}_viz.png"] != original(image)).any(axis=2)
        distance, inside = distance_to_outlines(image)
        near = distance <= STROKE / 2 + 1.5
        assert not changed[~inside & ~near].any(), image.name  # nothing outside what is drawn
        assert changed[inside & ~near].all(), image.name  # every filled pixel
        assert changed[distance <= 0.5].mean() > 0.95, image.name  # the outlines themselves


def test_fills_and_outlines_use_the_configured_colours_and_opacity(run_export, project):
    colours = {"external": "#ff00ff", "internal": "#00ffff"}
    solid = overlays(run_export, project, polygon_colors=colours, transparency=1.0)
    outlines_only = overlays(run_export, project, polygon_colors=colours, transparency=0.0)
    image = project.images[3]
    name = f"{image.stem}_viz.png"
    hole = next(p for p in image.polygons if p.kind == "internal")
    cell = next(p for p in image.polygons if p.id == hole.parent_id)
    ys, xs = np.mgrid[0 : image.height, 0 : image.width]
    centres = shapely.points(xs + 0.5, ys + 0.5)
    in_hole = shapely.contains(Polygon(hole.points).buffer(-STROKE), centres)
    in_cell = shapely.contains(Polygon(cell.points).buffer(-STROKE).difference(Polygon(hole.points).buffer(STROKE)),
                               centres)
    assert (solid[name][in_cell] == [255, 0, 255]).all()
    assert (solid[name][in_hole] == [0, 255, 255]).all()
    assert (outlines_only[name][in_cell] == original(image)[in_cell]).all()
    distance, _ = distance_to_outlines(image)
    assert (outlines_only[name][distance <= 0.5] != original(image)[distance <= 0.5]).any(axis=1).mean() > 0.95


def test_a_wider_stroke_paints_more_pixels(run_export, project):
    thin = overlays(run_export, project, stroke_width=1, transparency=0.0)
    thick = overlays(run_export, project, stroke_width=8, transparency=0.0)
    image = project.images[0]
    name = f"{image.stem}_viz.png"
    painted = [(d[name] != original(image)).any(axis=2).sum() for d in (thin, thick)]
    assert painted[1] > 3 * painted[0]


def test_numbers_are_drawn_inside_each_cell_at_the_font_size(run_export, project):
    plain = overlays(run_export, project, transparency=0.0)
    small = overlays(run_export, project, transparency=0.0, show_numbers=True, font_size=10)
    large = overlays(run_export, project, transparency=0.0, show_numbers=True, font_size=24)
    image = project.images[0]
    name = f"{image.stem}_viz.png"
    added = [(d[name] != plain[name]).any(axis=2) for d in (small, large)]
    assert added[1].sum() > 2 * added[0].sum() > 0
    for polygon in image.externals():
        x, y = Polygon(polygon.points).centroid.coords[0]
        assert added[0][int(y) - 2 : int(y) + 3, int(x) - 2 : int(x) + 3].any()


def test_an_unreadable_original_is_a_warning_that_names_the_image_not_the_server_path(run_export, project):
    damaged = project.images[1]
    damaged.path.write_bytes(b"not an image at all")
    ctx = RecordingContext()
    overlays_by_name = overlays_from(run_export(
        project, ctx=ctx, include_original_images=False, include_documentation=False, annotation_formats=[],
        metrics_formats=[], include_visualizations=True,
    ))

    assert len(overlays_by_name) == len(project.images) - 1
    [warning] = [w for w in ctx.warnings if damaged.name in w]
    assert "cannot be read" in warning
    assert str(damaged.path.parent) not in warning and "Errno" not in warning and "identify" not in warning


def overlays_from(result) -> list[str]:
    with zipfile.ZipFile(result.path) as archive:
        return [name for name in archive.namelist() if name.startswith("visualizations/")]
