"""One export end to end: ZIP layout, progress, cancellation, warnings, selection, naming."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exportd.domain.options import ExportOptions
from exportd.export.archive import image_file_names
from exportd.export.context import STAGES, ExportCancelled
from exportd.export import formats
from exportd.export.formats import available_formats
from exportd.export.pipeline import ExportResult, build_export
from exportd.export.source import ImageData, PolygonData, ProjectSnapshot
from exportd.synthetic import synthetic_project

GENERATED_AT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
COUNT = 3


class FakeContext:
    """Records progress and warnings; starts cancelling once `cancel_after` items are done."""

    def __init__(self, cancel_after: int | None = None) -> None:
        self.cancel_after = cancel_after
        self.items = 0
        self.log: list[str] = []
        self.advances: list[tuple[str, int, int, float, str]] = []
        self.warnings: list[str] = []

    def raise_if_cancelled(self) -> None:
        self.log.append("check")
        if self.cancel_after is not None and self.items >= self.cancel_after:
            raise ExportCancelled()

    def advance(self, stage: str, current: int, total: int, percent: float, message: str = "",
                item: str = "") -> None:
        self.advances.append((stage, current, total, percent, message))

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def item_done(self) -> None:
        self.items += 1
        self.log.append("done")


def polygon_from_api(data: dict) -> PolygonData:
    points = tuple((x, y) for x, y in data["points"])
    return PolygonData(data["id"], data["type"], points, data["parentId"], data["className"])


@pytest.fixture
def project(tmp_path: Path) -> ProjectSnapshot:
    folder = tmp_path / "stored"
    folder.mkdir()
    images = []
    for number, (name, png, polygons) in enumerate(synthetic_project(COUNT), 1):
        (folder / name).write_bytes(png)
        images.append(
            ImageData(f"img-{number}", name, 512, 384, folder / name, tuple(map(polygon_from_api, polygons)))
        )
    return ProjectSnapshot(id="p-1", name="Demo spheroids", images=tuple(images))


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    path = tmp_path / "out"
    path.mkdir()
    return path


def export(
    project: ProjectSnapshot, out_dir: Path, ctx: FakeContext | None = None, **options: object
) -> ExportResult:
    options = ExportOptions(**options)
    ctx = ctx or FakeContext()
    return build_export(project, options, out_dir, job_id="job-42", generated_at=GENERATED_AT, ctx=ctx)


def entries(result: ExportResult) -> list[str]:
    with zipfile.ZipFile(result.path) as archive:
        assert archive.testzip() is None
        return archive.namelist()


def read_json(result: ExportResult, name: str) -> dict:
    with zipfile.ZipFile(result.path) as archive:
        return json.loads(archive.read(name))


def test_default_options_give_images_overlays_coco_json_excel_documentation_and_metadata(project, out_dir):
    result = export(project, out_dir)
    assert sorted(entries(result)) == sorted(
        [f"images/spheroid_0{n}.png" for n in range(1, COUNT + 1)]
        + [f"visualizations/spheroid_0{n}_viz.png" for n in range(1, COUNT + 1)]
        + [
            "annotations/coco/annotations.json",
            "annotations/json/segmentation_data.json",
            "metrics/metrics.xlsx",
            "documentation/metrics_guide.md",
            "documentation/README.md",
            "documentation/metadata.json",
            "annotations/README.md",
            "annotations/coco/QUICK_SETUP.md",
            "annotations/json/QUICK_SETUP.md",
            "metadata.json",
        ]
    )
    assert result.file_name == f"Demo_spheroids_{GENERATED_AT.astimezone():%Y-%m-%d_%H%M}.zip"
    assert result.path == out_dir / result.file_name
    assert result.size == result.path.stat().st_size


def test_original_images_are_stored_byte_for_byte_without_compression(project, out_dir):
    result = export(project, out_dir)
    with zipfile.ZipFile(result.path) as archive:
        info = archive.getinfo("images/spheroid_01.png")
        assert info.compress_type == zipfile.ZIP_STORED
        assert archive.read(info) == project.images[0].path.read_bytes()
        assert archive.getinfo("metadata.json").compress_type == zipfile.ZIP_DEFLATED


def test_without_images_or_documentation_only_the_chosen_format_and_metadata_remain(project, out_dir):
    result = export(
        project,
        out_dir,
        include_original_images=False,
        include_visualizations=False,
        include_documentation=False,
        annotation_formats=["json"],
        metrics_formats=[],
    )
    assert sorted(entries(result)) == ["annotations/json/segmentation_data.json", "metadata.json"]


def test_metadata_records_the_job_the_options_in_camel_case_and_the_counts(project, out_dir):
    result = export(project, out_dir, annotation_formats=["coco"], pixel_to_micrometer_scale=0.5)
    metadata = read_json(result, "metadata.json")
    assert metadata["jobId"] == "job-42"
    assert metadata["project"] == {"id": "p-1", "name": "Demo spheroids"}
    assert metadata["generatedAt"] == GENERATED_AT.isoformat()
    assert metadata["options"]["annotationFormats"] == ["coco"]
    assert metadata["options"]["pixelToMicrometerScale"] == 0.5
    assert metadata["imageCount"] == COUNT
    externals = sum(len(i.externals()) for i in project.images)
    assert metadata["polygonCounts"]["external"] == externals
    assert metadata["formats"]["annotations"] == [
        {"name": "coco", "path": "annotations/coco/annotations.json"}
    ]
    assert metadata["files"] == entries(result)


def test_readme_describes_the_files_that_were_written(project, out_dir):
    with_json = export(project, out_dir, annotation_formats=["json"])
    with zipfile.ZipFile(with_json.path) as archive:
        readme = archive.read("documentation/README.md").decode()
    assert "`images/` (3 files)" in readme
    assert "annotations/json/segmentation_data.json" in readme
    assert "annotations/coco" not in readme
    assert "Demo spheroids" in readme


def test_progress_never_decreases_and_reaches_100_only_when_the_zip_is_closed(project, out_dir):
    ctx = FakeContext()
    export(project, out_dir, ctx)
    percents = [a[3] for a in ctx.advances]
    assert percents == sorted(percents)
    assert percents[-1] == 100 and percents.count(100) == 1
    assert ctx.advances[-1][:3] == ("compression", 1, 1)
    # images 3 + overlays 3 + coco 3 + json 3 + excel 3 + metrics guide, annotation guides,
    # documentation/metadata.json, README, metadata.json + compression:
    # one report per item, equal steps
    assert len(ctx.advances) == ctx.items == 3 + 3 + 3 + 3 + 3 + 5 + 1
    assert percents[0] == pytest.approx(100 / 21, abs=0.01)
    stages = [a[0] for a in ctx.advances]
    assert stages == sorted(stages, key=STAGES.index)
    assert [a[1:3] for a in ctx.advances if a[0] == "annotations"] == [(n, 6) for n in range(1, 7)]


def test_the_job_is_asked_whether_to_go_on_before_every_item(project, out_dir):
    ctx = FakeContext()
    export(project, out_dir, ctx)
    steps = "".join("c" if entry == "check" else "d" for entry in ctx.log)
    assert steps.count("d") == 21
    assert "dd" not in steps and steps.startswith("c")


@pytest.mark.parametrize("cancel_after", [0, 1, 4, 10, 11, 14, 18])
def test_cancelling_stops_before_the_next_item_and_leaves_no_zip(project, out_dir, cancel_after):
    ctx = FakeContext(cancel_after=cancel_after)
    with pytest.raises(ExportCancelled):
        export(project, out_dir, ctx)
    assert ctx.items == cancel_after
    assert not ctx.advances or ctx.advances[-1][3] < 100
    assert list(out_dir.iterdir()) == []


def test_a_failure_inside_a_writer_removes_the_partial_zip(project, out_dir, monkeypatch):
    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("exportd.export.json_format.JsonWriter.write", explode)
    with pytest.raises(OSError, match="disk full"):
        export(project, out_dir)
    assert list(out_dir.iterdir()) == []


def test_an_unsupported_format_is_refused_before_any_file_is_written(project, out_dir, monkeypatch):
    for group, missing in (("metrics", "csv"), ("annotations", "yolo")):
        without = {name: w for name, w in formats.WRITERS[group].items() if name != missing}
        monkeypatch.setitem(formats.WRITERS, group, without)
    with pytest.raises(ValueError, match="metrics format 'csv' is not supported"):
        export(project, out_dir, metrics_formats=["csv"])
    with pytest.raises(ValueError, match="annotations format 'yolo'"):
        export(project, out_dir, annotation_formats=["yolo"])
    assert list(out_dir.iterdir()) == []


def test_degenerate_polygons_become_warnings_not_failures(project, out_dir):
    broken = PolygonData("broken", "external", ((1.0, 1.0), (2.0, 2.0)))
    first = project.images[0]
    damaged = ImageData(first.id, first.name, 512, 384, first.path, (*first.polygons, broken))
    images = (damaged, *project.images[1:])
    ctx = FakeContext()
    result = export(ProjectSnapshot(project.id, project.name, images=images), out_dir, ctx)
    assert len(result.warnings) == 1
    assert "spheroid_01.png" in result.warnings[0] and "broken" in result.warnings[0]
    assert ctx.warnings == result.warnings
    assert read_json(result, "metadata.json")["warnings"] == result.warnings
    coco = read_json(result, "annotations/coco/annotations.json")
    assert len(coco["annotations"]) == sum(len(i.externals()) for i in project.images)


def test_a_missing_original_is_left_out_of_images_and_visualizations_with_warnings(project, out_dir):
    project.images[1].path.unlink()
    result = export(project, out_dir, include_visualizations=True)
    names = entries(result)
    assert "images/spheroid_02.png" not in names and "visualizations/spheroid_02_viz.png" not in names
    assert "visualizations/spheroid_03_viz.png" in names
    missing = [w for w in result.warnings if "spheroid_02.png" in w and "missing" in w]
    assert len(missing) == 2 and any("no visualization" in w for w in missing)


def test_selected_image_ids_restrict_every_part_of_the_export(project, out_dir):
    result = export(project, out_dir, selected_image_ids=["img-3", "img-1"])
    assert sorted(n for n in entries(result) if n.startswith("images/")) == [
        "images/spheroid_01.png",
        "images/spheroid_03.png",
    ]
    coco = read_json(result, "annotations/coco/annotations.json")
    assert [i["file_name"] for i in coco["images"]] == ["spheroid_01.png", "spheroid_03.png"]
    data = read_json(result, "annotations/json/segmentation_data.json")
    assert [i["id"] for i in data["images"]] == ["img-1", "img-3"]
    assert read_json(result, "metadata.json")["imageCount"] == 2


def test_images_with_the_same_name_get_distinct_entries_that_coco_refers_to(project, out_dir):
    twin = ImageData("img-9", "spheroid_01.png", 512, 384, project.images[1].path)
    images = (project.images[0], twin)
    result = export(ProjectSnapshot(project.id, project.name, images=images), out_dir)
    assert {"images/spheroid_01.png", "images/spheroid_01_2.png"} <= set(entries(result))
    coco = read_json(result, "annotations/coco/annotations.json")
    assert [i["file_name"] for i in coco["images"]] == ["spheroid_01.png", "spheroid_01_2.png"]


def test_image_file_names_drop_folders_and_never_collide(tmp_path):
    images = [
        ImageData(str(n), name, 1, 1, tmp_path)
        for n, name in enumerate(["../a.png", "dir\\a.png", "A.PNG", "", "b"], 1)
    ]
    assert list(image_file_names(images).values()) == ["a.png", "a_2.png", "A_3.PNG", "image_4.png", "b"]


def test_available_formats_describe_every_registered_writer_and_feature():
    described = available_formats()
    assert [(w["name"], w["path"]) for w in described["annotations"]] == [
        ("coco", "annotations/coco/annotations.json"),
        ("yolo", "annotations/yolo/"),
        ("json", "annotations/json/segmentation_data.json"),
        ("masks", "masks/"),
        ("geojson", "annotations/geojson/"),
    ]
    assert [(w["name"], w["path"]) for w in described["metrics"]] == [
        ("excel", "metrics/metrics.xlsx"),
        ("csv", "metrics/metrics.csv"),
        ("json", "metrics/metrics.json"),
    ]
    assert all(w["title"] and w["group"] == group for group in ("annotations", "metrics") for w in described[group])
    assert described["features"] == ["originalImages", "visualizations", "documentation"]
    json.dumps(described)
