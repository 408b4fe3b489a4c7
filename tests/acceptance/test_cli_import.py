"""`exportd projects create` and `exportd import` as a real process: masks, COCO, images only, re-runs, refusals."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import tifffile
from PIL import Image

from exportd.synthetic import synthetic_project
from tests.acceptance.support import running
from tests.acceptance.test_cli_client import Cli
from tests.acceptance.test_http_import import HEIGHT, WIDTH, grey_png, labels_with_every_case


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def summary_numbers(out: str) -> tuple[int, int, int, int]:
    """(imported, cells, skipped, rejected) from the summary line."""
    text = " ".join(out.split())
    match = re.search(r"Imported (\d+) images with (\d+) cells; (\d+) already in the project \(skipped\); "
                      r"(\d+) rejected", text)
    assert match, out
    return tuple(int(group) for group in match.groups())


async def test_projects_create_then_import_with_masks_names_bad_files_and_a_rerun_imports_nothing_twice(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for n, stem in enumerate(["a", "b", "c", "d"]):
        (images / f"{stem}.png").write_bytes(grey_png(n))
    (images / "notes.txt").write_text("not an image, and not an image suffix: ignored in a folder")
    (masks / "a.png").write_bytes(png(labels_with_every_case(np.uint8)))  # 8-bit PNG
    (masks / "b_cp_masks.png").write_bytes(png(labels_with_every_case(np.uint16)))  # 16-bit PNG
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, labels_with_every_case(np.uint16))
    (masks / "c.tif").write_bytes(buffer.getvalue())  # 16-bit TIFF
    (masks / "d.png").write_bytes(png(np.ones((10, 10), np.uint8)))  # the wrong size
    (masks / "z.png").write_bytes(png(np.ones((HEIGHT, WIDTH), np.uint8)))  # no image of this stem
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"this is not a png")

    async with running(tmp_path) as app:
        cli = Cli(tmp_path)
        await app.user("ada@example.com")
        await cli.login(app)
        created = await cli.run("projects", "create", "My cells")
        assert created.code == 0, created
        project_id = created.out.split()[-1]

        first = await cli.run("import", project_id, str(images), str(broken), "--masks", str(masks))
        again = await cli.run("import", project_id, str(images), str(broken), "--masks", str(masks))
        listed = await cli.run("projects")

    assert first.code == 1, first  # something was rejected
    assert summary_numbers(first.out) == (3, 12, 0, 4)
    err = " ".join(first.err.split())
    assert "rejected " + str(masks / "d.png") + ": is 10x10, its image d.png is 96x72" in err
    assert "rejected " + str(images / "d.png") + ": not imported: d.png was rejected" in err
    assert "rejected " + str(masks / "z.png") + ": no image has its stem" in err
    assert "rejected " + str(broken) + ": is not a readable image" in err
    assert "Traceback" not in first.err
    assert summary_numbers(again.out) == (0, 0, 3, 4)  # nothing twice
    assert "My cells" in listed.out and " 3 " in listed.out


async def test_import_with_a_coco_file_and_images_only(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    document = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "nucleus"}]}
    expected_cells = 0
    for n, (name, data, polygons) in enumerate(synthetic_project(count=3, seed=3), 1):
        (folder / name).write_bytes(data)
        document["images"].append({"id": n, "file_name": name, "width": 512, "height": 384})
        for polygon in polygons:
            if polygon["type"] == "external":
                expected_cells += 1
                document["annotations"].append({
                    "id": len(document["annotations"]) + 1, "image_id": n, "category_id": 1,
                    "segmentation": [np.ravel(polygon["points"]).tolist()]})
    coco = tmp_path / "instances.json"
    coco.write_text(json.dumps(document))
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "x.png").write_bytes(grey_png(9))

    async with running(tmp_path) as app:
        cli = Cli(tmp_path)
        await app.user("ada@example.com")
        await cli.login(app)
        project_id = (await cli.run("projects", "create", "COCO")).out.split()[-1]
        from_coco = await cli.run("import", project_id, str(folder), "--coco", str(coco))
        only_images = await cli.run("import", project_id, str(plain / "x.png"))
        not_json = await cli.run("import", project_id, str(folder), "--coco", str(plain / "x.png"))
        missing = await cli.run("import", project_id, str(tmp_path / "nowhere"))

    assert from_coco.code == 0, from_coco
    assert summary_numbers(from_coco.out) == (3, expected_cells, 0, 0)
    assert only_images.code == 0 and summary_numbers(only_images.out) == (1, 0, 0, 0)
    assert not_json.code == 1 and "is not valid JSON" in not_json.err and "Traceback" not in not_json.err
    assert missing.code == 1 and "No such file or folder" in missing.err
