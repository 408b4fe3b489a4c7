"""An export with a process pool: the same ZIP as without one, progress that never goes back,
cancellation that leaves nothing behind, and warnings kept once each."""

from __future__ import annotations

import io
import tempfile
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import openpyxl
import pytest

from exportd.export.context import ExportCancelled
from exportd.export.pipeline import MAX_WARNINGS
from exportd.export.source import ImageData, ProjectSnapshot

EVERYTHING = dict(
    include_original_images=True, include_visualizations=True, include_documentation=True,
    annotation_formats=["coco", "yolo", "json", "masks", "geojson"], metrics_formats=["excel", "csv", "json"],
)


@pytest.fixture(autouse=True)
def own_temporary_folder(tmp_path, monkeypatch):
    """openpyxl's temporary files go to a folder of this test's own, so files that other programs'
    workbooks leave in the shared one are never taken for ours."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))


@pytest.fixture(scope="module")
def pool():
    with ProcessPoolExecutor(2) as executor:
        yield executor


def contents(path: Path) -> dict[str, object]:
    """Every entry's bytes; the workbook by its cell values (its properties carry the time it was saved)."""
    with zipfile.ZipFile(path) as archive:
        found: dict[str, object] = {}
        for name in archive.namelist():
            data = archive.read(name)
            if name.endswith(".xlsx"):
                book = openpyxl.load_workbook(io.BytesIO(data))
                found[name] = {sheet.title: list(sheet.values) for sheet in book}
            else:
                found[name] = data
        return found


def openpyxl_leftovers() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("openpyxl.*")}


def test_a_pool_gives_the_same_zip_as_working_inline(run_export, make_project, make_context, out_dir, pool):
    project = make_project(12, width=160, height=120)
    first = run_export(project, **EVERYTHING).path
    inline = contents(first)
    first.unlink()
    ctx = make_context()
    pooled = contents(run_export(project, ctx, pool, **EVERYTHING).path)
    assert list(pooled) == list(inline)
    for name in inline:
        assert pooled[name] == inline[name], name
    assert ctx.percents == sorted(ctx.percents) and ctx.percents[-1] == 100
    assert ctx.items == 12 * (1 + 1 + 5 + 3) + 5 + 1  # documents: metrics guide, annotation guides, two metadata, README


@pytest.mark.parametrize("cancel_after", [3, 15, 30, 50, 80])
def test_cancelling_with_a_pool_stops_within_one_item_and_leaves_no_file(
    run_export, make_project, make_context, out_dir, pool, cancel_after
):
    project = make_project(10, width=96, height=64)
    before = openpyxl_leftovers()
    ctx = make_context(cancel_after=cancel_after)
    with pytest.raises(ExportCancelled):
        run_export(project, ctx, pool, **EVERYTHING)
    assert ctx.items == cancel_after
    assert list(out_dir.iterdir()) == []
    assert openpyxl_leftovers() <= before


@pytest.mark.parametrize("stage_fraction", [0.15, 0.85])
def test_a_cancelled_export_of_a_500_image_project_leaves_no_file_behind(
    run_export, make_project, make_context, out_dir, stage_fraction
):
    project = make_project(500, width=64, height=64)
    options = dict(EVERYTHING, annotation_formats=["coco", "yolo"], metrics_formats=["excel", "csv"])
    total = 500 * (1 + 1 + 2 + 2) + 3 + 1
    before = openpyxl_leftovers()
    ctx = make_context(cancel_after=int(total * stage_fraction))
    with pytest.raises(ExportCancelled):
        run_export(project, ctx, **options)
    assert ctx.items == int(total * stage_fraction)
    assert list(out_dir.iterdir()) == []
    assert openpyxl_leftovers() <= before


def test_each_warning_is_kept_once_and_the_list_is_capped(run_export, tmp_path, make_context):
    count = MAX_WARNINGS + 30
    images = tuple(ImageData(f"i{n}", f"empty_{n:03d}.png", 64, 64, tmp_path / "none.png") for n in range(count))
    ctx = make_context()
    result = run_export(ProjectSnapshot("p", "P", images=images), ctx, include_original_images=False,
                        include_visualizations=True, annotation_formats=["coco", "yolo"], metrics_formats=["csv"])
    assert result.warnings == ctx.warnings
    assert len(result.warnings) == MAX_WARNINGS + 1
    assert result.warnings[0] == "empty_000.png: no polygons to annotate, measure or draw"
    assert len(set(result.warnings)) == len(result.warnings)
    assert result.warnings[-1] == "30 more warnings are not listed"
