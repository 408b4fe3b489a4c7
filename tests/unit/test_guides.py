"""The guides in the ZIP exist for each annotation format and point only at what the ZIP holds;
`documentation/metadata.json` has the replaced platform's keys."""

from __future__ import annotations

import json
import re
import zipfile

import pytest

from exportd import __version__

ALL_FORMATS = ["coco", "yolo", "json", "geojson", "masks"]
GUIDES = {
    "coco": "annotations/coco/QUICK_SETUP.md",
    "yolo": "annotations/yolo/QUICK_SETUP.md",
    "json": "annotations/json/QUICK_SETUP.md",
    "geojson": "annotations/geojson/QUICK_SETUP.md",
    "masks": "masks/QUICK_SETUP.md",
}
TOP_FOLDERS = ("images/", "visualizations/", "annotations/", "masks/", "metrics/", "documentation/")


def export_zip(run_export, project, **options) -> tuple[list[str], dict[str, str]]:
    result = run_export(project, include_visualizations=False, metrics_formats=["csv"], **options)
    with zipfile.ZipFile(result.path) as archive:
        names = archive.namelist()
        texts = {n: archive.read(n).decode("utf-8") for n in names if n.endswith((".md", ".json"))}
    return names, texts


def named_paths(markdown: str) -> set[str]:
    """Every path of the ZIP that a text names in `code`: under a top folder, or metadata.json
    (patterns such as `masks/<image stem>.tif` are not paths)."""
    spans = set(re.findall(r"`([^`\n]+)`", markdown))
    return {s for s in spans if (s.startswith(TOP_FOLDERS) or s == "metadata.json") and not set(s) & set("<*")}


def exists(path: str, names: list[str]) -> bool:
    return path in names or (path.endswith("/") and any(n.startswith(path) for n in names))


def test_every_annotation_format_has_its_quick_setup_and_the_annotations_readme_lists_them(run_export,
                                                                                           make_project):
    names, texts = export_zip(run_export, make_project(3), annotation_formats=ALL_FORMATS)
    assert "annotations/README.md" in names
    readme = texts["annotations/README.md"]
    for format_name, guide in GUIDES.items():
        assert guide in names, format_name
        assert f"`{guide}`" in readme
    assert "COCO 1.0" in texts[GUIDES["coco"]] and "CVAT" in texts[GUIDES["coco"]]
    assert "yolo segment train data=data.yaml" in texts[GUIDES["yolo"]]
    assert "`segmentation.polygons.external[]`" in texts[GUIDES["json"]]
    assert "QuPath" in texts[GUIDES["geojson"]] and "--mask_filter _masks" in texts[GUIDES["masks"]]


def test_every_path_a_guide_or_readme_names_is_in_the_zip(run_export, make_project):
    names, texts = export_zip(run_export, make_project(3), annotation_formats=ALL_FORMATS)
    documents = [n for n in names if n.endswith(".md")]
    assert len(documents) == 2 + 1 + len(GUIDES)  # the documentation README and guide, annotations README
    checked = 0
    for document in documents:
        for path in named_paths(texts[document]):
            assert exists(path, names), f"{document} names {path}, which is not in the ZIP"
            checked += 1
    assert checked > 30  # the check saw the guides' paths, e.g. the example image's files
    example = "cells_001"
    assert f"`images/{example}.png`" in texts[GUIDES["coco"]]
    assert f"`annotations/yolo/{example}.txt`" in texts[GUIDES["yolo"]]
    assert f"`masks/{example}.tif`" in texts[GUIDES["masks"]]


def test_only_the_exported_formats_get_guides_and_missing_images_are_said_to_be_missing(run_export, make_project):
    names, texts = export_zip(run_export, make_project(2), annotation_formats=["yolo"],
                              include_original_images=False)
    assert [n for n in names if n.endswith("QUICK_SETUP.md")] == [GUIDES["yolo"]]
    readme = texts["annotations/README.md"]
    assert "`annotations/coco/" not in readme and "`masks/" not in readme
    assert "original images are not in this export" in texts[GUIDES["yolo"]]


def test_without_documentation_there_are_no_guides(run_export, make_project):
    names, _ = export_zip(run_export, make_project(2), annotation_formats=["coco"], include_documentation=False)
    assert not [n for n in names if n.endswith(".md")] and "documentation/metadata.json" not in names


@pytest.mark.parametrize("scale", [None, 0.5])
def test_documentation_metadata_has_the_replaced_platforms_keys_beside_exportds_own(run_export, make_project, scale):
    project = make_project(2)
    names, texts = export_zip(run_export, project, annotation_formats=["coco"], pixel_to_micrometer_scale=scale)
    legacy = json.loads(texts["documentation/metadata.json"])
    own = json.loads(texts["metadata.json"])
    assert list(legacy) == ["projectId", "projectName", "exportDate", "imageCount", "exportOptions", "version"]
    assert legacy["projectId"] == project.id and legacy["projectName"] == project.name
    assert legacy["exportDate"] == own["generatedAt"] and legacy["imageCount"] == 2
    assert legacy["exportOptions"] == own["options"] and legacy["exportOptions"]["pixelToMicrometerScale"] == scale
    assert legacy["version"] == __version__
    assert "documentation/metadata.json" in own["files"]
