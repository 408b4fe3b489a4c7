"""Importing one's own data in the browser: a new project, images and a COCO file, then an export
whose ZIP holds what was imported (headless Chromium against a real `exportd serve`)."""

from __future__ import annotations

import json
import zipfile

from PIL import Image
from playwright.sync_api import expect

from exportd.synthetic import synthetic_project
from tests.browser.test_export_flows import TIMEOUT_MS, sign_in, wait_for_downloads


def coco_of(images: list[tuple[str, bytes, list[dict]]], width: int, height: int) -> dict:
    """A COCO instances file with the images' cells as polygons, as another tool would write it."""
    coco = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "cell"}]}
    for index, (name, _, polygons) in enumerate(images, 1):
        coco["images"].append({"id": index, "file_name": f"data/{name}", "width": width, "height": height})
        for polygon in polygons:
            xs, ys = [x for x, _ in polygon["points"]], [y for _, y in polygon["points"]]
            coco["annotations"].append({
                "id": len(coco["annotations"]) + 1, "image_id": index, "category_id": 1, "iscrowd": 0,
                "segmentation": [[value for point in polygon["points"] for value in point]],
                "bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)], "area": 1.0,
            })
    return coco


def test_a_project_imported_with_a_coco_file_exports_what_was_imported(server, context, downloads, tmp_path):
    account = server.account(images=1)
    images = list(synthetic_project(count=3, seed=11))
    folder = tmp_path / "mine"
    folder.mkdir()
    for name, png, _ in images:
        (folder / name).write_bytes(png)
    with Image.open(folder / images[0][0]) as first:
        width, height = first.size
    (folder / "instances.json").write_text(json.dumps(coco_of(images, width, height)))
    cells = {name: len(polygons) for name, _, polygons in images}

    page = context.new_page()
    sign_in(page, server, account)
    by = page.get_by_test_id
    by("project-name").fill("My spheroids")
    by("project-create").click()
    expect(page.locator("#import-dialog")).to_be_visible(timeout=TIMEOUT_MS)  # straight to the import
    expect(by("project-list")).to_contain_text("My spheroids")

    by("import-files").set_input_files([str(folder / name) for name, _, _ in images])
    by("import-coco").set_input_files(str(folder / "instances.json"))
    expect(by("import-polygons-coco")).to_be_checked()
    by("import-start").click()
    for index in range(len(images)):
        expect(by(f"import-file-{index}")).to_have_attribute("data-status", "stored", timeout=TIMEOUT_MS)
    expect(by("import-summary")).to_contain_text(f"{sum(cells.values())} cells")

    by("import-files").set_input_files([str(folder / name) for name, _, _ in images])  # again: nothing twice
    by("import-start").click()
    for index in range(len(images)):
        expect(by(f"import-file-{index}")).to_have_attribute("data-status", "skipped", timeout=TIMEOUT_MS)
    by("import-export").click()
    by("tab-formats").click()
    by("option-annotation-json").uncheck()
    by("export-start").click()

    wait_for_downloads(page, downloads, 1)
    with zipfile.ZipFile(downloads.saved(0)) as archive:
        names = archive.namelist()
        coco = json.loads(archive.read("annotations/coco/annotations.json"))
    assert sorted(name for name in names if name.startswith("images/")) == sorted(f"images/{name}" for name in cells)
    exported = {image["file_name"].rsplit("/", 1)[-1]: image["id"] for image in coco["images"]}
    per_image = {name: sum(1 for a in coco["annotations"] if a["image_id"] == image_id)
                 for name, image_id in exported.items()}
    assert per_image == cells
