"""Round trips through exportd with the SDK: COCO -> exportd -> COCO gives the same polygons and
metrics; label masks -> exportd -> masks gives the same cells."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from exportd.client import ExportdClient
from exportd.domain.options import ExportOptions
from exportd.synthetic import synthetic_project
from tests.acceptance.support import running

ROUND_TRIP = ExportOptions(include_visualizations=False, include_documentation=False,
                           annotation_formats=["coco", "masks"], metrics_formats=["json"])


async def export_zip(client: ExportdClient, project_id: str, folder: Path) -> zipfile.ZipFile:
    job = await client.start_export(project_id, ROUND_TRIP)
    async for _ in client.watch(job):
        pass
    saved = await client.download(job, folder / f"{project_id}.zip")
    return zipfile.ZipFile(saved)


def unpack(archive: zipfile.ZipFile, folder: Path) -> tuple[Path, Path, Path]:
    """The ZIP's images folder, COCO file and masks folder, written to `folder`."""
    archive.extractall(folder)
    return folder / "images", folder / "annotations/coco/annotations.json", folder / "masks"


def annotations_by_image(coco: dict) -> dict[str, list[dict]]:
    names = {image["id"]: Path(image["file_name"]).name for image in coco["images"]}
    found: dict[str, list[dict]] = {name: [] for name in names.values()}
    for annotation in coco["annotations"]:
        found[names[annotation["image_id"]]].append(annotation)
    return found


def metric_rows(archive: zipfile.ZipFile) -> list[dict]:
    return json.loads(archive.read("metrics/metrics.json"))["polygons"]


def assert_same_cells(first: dict, second: dict, *, with_holes: bool) -> None:
    """Same images, same annotations in order: polygons within 1e-6 px, masks identical."""
    a, b = annotations_by_image(first), annotations_by_image(second)
    assert a.keys() == b.keys()
    for name in a:
        assert len(a[name]) == len(b[name]), name
        for left, right in zip(a[name], b[name], strict=True):
            if isinstance(left["segmentation"], list):
                assert isinstance(right["segmentation"], list)
                np.testing.assert_allclose(right["segmentation"], left["segmentation"], atol=1e-6, rtol=0)
                assert right["area"] == left["area"]
            else:
                assert with_holes
                assert right["segmentation"] == left["segmentation"]  # the same pixels, run for run


def assert_same_metrics(first: list[dict], second: list[dict], *, only_without_holes: bool) -> None:
    assert len(first) == len(second)
    for left, right in zip(first, second, strict=True):
        if only_without_holes and left.get("holes"):
            continue
        for key, value in left.items():
            if isinstance(value, float):
                assert abs(right[key] - value) <= 1e-6 * max(1.0, abs(value)), (key, value, right[key])
            elif key not in ("polygonId", "imageId", "id"):
                assert right[key] == value, (key, value, right[key])


async def test_a_coco_file_exportd_exported_imports_back_to_the_same_polygons_and_metrics(tmp_path):
    async with running(tmp_path) as app:
        _, token = await app.user("ada@example.com")
        project_a, _ = await app.project(token, images=4)  # the fourth image has a cell with a hole
        async with ExportdClient(app.url, token=token) as client:
            first = await export_zip(client, project_a, tmp_path)
            images, coco_file, _ = unpack(first, tmp_path / "a")
            coco_a = json.loads(coco_file.read_text())
            assert any(isinstance(a["segmentation"], dict) for a in coco_a["annotations"])

            project_b = (await client.create_project("Imported")).id
            summary = await client.import_images(project_b, [images], coco=coco_file)
            assert summary.rejected == [] and len(summary.imported) == 4
            assert summary.cells == len(coco_a["annotations"])
            second = await export_zip(client, project_b, tmp_path)
            _, coco_file_b, _ = unpack(second, tmp_path / "b")
            coco_b = json.loads(coco_file_b.read_text())

            project_c = (await client.create_project("Imported twice")).id
            await client.import_images(project_c, [images], coco=coco_file_b)
            third = await export_zip(client, project_c, tmp_path)
            coco_c = json.loads(unpack(third, tmp_path / "c")[1].read_text())

    assert [c["name"] for c in coco_b["categories"]] == [c["name"] for c in coco_a["categories"]]
    assert_same_cells(coco_a, coco_b, with_holes=True)
    assert_same_metrics(metric_rows(first), metric_rows(second), only_without_holes=True)
    # cells with holes come back as their pixel outlines, and from then on stay exactly the same
    assert_same_cells(coco_b, coco_c, with_holes=True)
    assert_same_metrics(metric_rows(second), metric_rows(third), only_without_holes=False)


async def test_label_masks_go_through_exportd_and_come_back_as_the_same_cells(tmp_path):
    rng = np.random.default_rng(5)
    folder, masks = tmp_path / "images", tmp_path / "masks"
    folder.mkdir()
    masks.mkdir()
    expected: dict[str, np.ndarray] = {}
    for n, (name, png, _) in enumerate(synthetic_project(count=3, seed=9)):
        (folder / name).write_bytes(png)
        labels = np.zeros((384, 512), np.uint16)
        for label in range(1, 40):  # rectangles and discs, some touching, some at the border
            y, x = rng.integers(0, 384), rng.integers(0, 512)
            labels[max(y - 12, 0):y + 12, max(x - 15, 0):x + 15] = label
        labels[100:140, 100:140] = 40
        labels[112:128, 112:128] = 0  # a hole
        stem = Path(name).stem
        buffer = io.BytesIO()
        if n == 0:
            tifffile.imwrite(buffer, labels)
            (masks / f"{stem}.tif").write_bytes(buffer.getvalue())
        else:
            Image.fromarray(labels if n == 1 else (labels % 256).astype(np.uint8)).save(buffer, "PNG")
            (masks / f"{stem}_masks.png").write_bytes(buffer.getvalue())
            labels = labels if n == 1 else (labels % 256).astype(np.uint16)
        expected[stem] = labels

    async with running(tmp_path) as app:
        _, token = await app.user("ada@example.com")
        async with ExportdClient(app.url, token=token) as client:
            project = (await client.create_project("Masks")).id
            summary = await client.import_images(project, [folder], masks=masks)
            assert summary.rejected == [] and len(summary.imported) == 3
            archive = await export_zip(client, project, tmp_path)
            exported = {Path(name).stem: tifffile.imread(io.BytesIO(archive.read(name)))
                        for name in archive.namelist() if name.startswith("masks/")}

    assert exported.keys() == expected.keys()
    for stem, labels in expected.items():
        back = exported[stem]
        assert (back > 0).sum() == (labels > 0).sum()
        for label in np.unique(labels[labels > 0]):
            original = labels == label
            values = np.unique(back[original])  # a label in separate pieces is one cell per piece
            assert 0 not in values
            cells = np.isin(back, values)
            assert (cells & original).sum() / (cells | original).sum() >= 0.98
