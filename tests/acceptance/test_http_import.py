"""Importing one's own data over HTTP: images with label masks or a COCO file, re-runs, and refusals."""

from __future__ import annotations

import io
import json

import numpy as np
import tifffile
from PIL import Image

from exportd.export.raster import rasterize
from exportd.store.points import unpack as decode_points
from exportd.synthetic import synthetic_image
from tests.acceptance.support import assert_error

WIDTH, HEIGHT = 96, 72


def grey_png(seed: int, width: int = WIDTH, height: int = HEIGHT) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width), dtype=np.uint8)
    return _png(pixels)


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def _tiff(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array)
    return buffer.getvalue()


def labels_with_every_case(dtype=np.uint16) -> np.ndarray:
    """A cell with a hole, two touching cells, a cell in the corner (at the border), a large label number."""
    labels = np.zeros((HEIGHT, WIDTH), dtype=dtype)
    labels[10:30, 10:30] = 1
    labels[16:22, 16:22] = 0  # its hole
    labels[10:30, 30:45] = 2  # touches 1
    labels[50:72, 0:20] = 3  # at the left and bottom border
    labels[40:60, 60:80] = 200 if dtype == np.uint8 else 60_000
    return labels


async def stored_polygons(served, project_id: str) -> dict[str, list]:
    """The stored polygons of each image of the project, by image name."""
    def read(repo):
        images = repo.images_of(project_id)
        rows = repo.polygons_of([image.id for image in images])
        names = {image.id: image.name for image in images}
        found: dict[str, list] = {name: [] for name in names.values()}
        for row in rows:
            found[names[row.image_id]].append(row)
        return found

    return await served.runtime.store.query(read)


def painted(rows, height: int = HEIGHT, width: int = WIDTH) -> dict[str, np.ndarray]:
    """Each external polygon's pixels (minus its holes), rasterised at pixel centres as every writer does."""
    points = {row.id: decode_points(row.points) for row in rows}
    cells = {}
    for row in rows:
        if row.kind == "external":
            mask = rasterize([points[row.id]], height, width).astype(bool)
            for hole in rows:
                if hole.kind == "internal" and hole.parent_id == row.id:
                    mask &= ~rasterize([points[hole.id]], height, width).astype(bool)
            cells[row.id] = mask
    return cells


async def upload(http, project_id: str, files: list, **data):
    return await http.post(f"/api/projects/{project_id}/images", files=files, data=data)


async def new_project(http, name: str = "Mine") -> str:
    return (await http.post("/api/projects", json={"name": name})).json()["id"]


async def test_label_masks_of_every_bit_depth_import_as_the_same_cells_with_their_holes(served):
    _, token = await served.user("ada@example.com")
    masks = {
        "a": ("a_masks.png", _png(labels_with_every_case(np.uint16))),
        "b": ("b.tif", _tiff(labels_with_every_case(np.uint16))),
        "c": ("c_cp_masks.png", _png(labels_with_every_case(np.uint8))),
        "d": ("d.tiff", _tiff(labels_with_every_case(np.uint32) * 70_000 // 60_000)),
    }
    async with served.client(token) as http:
        project_id = await new_project(http)
        files = [("files", (f"{stem}.png", grey_png(n), "image/png")) for n, stem in enumerate(masks)]
        files += [("masks", (name, data, "application/octet-stream")) for name, data in masks.values()]
        response = await upload(http, project_id, files)

    assert response.status_code == 201, response.text
    body = response.json()
    assert [image["name"] for image in body["images"]] == ["a.png", "b.png", "c.png", "d.png"]
    assert [image["polygonCount"] for image in body["images"]] == [5, 5, 5, 5]  # 4 cells, 1 hole
    assert body["cells"] == 16 and body["skipped"] == []
    stored = await stored_polygons(served, project_id)
    for stem in masks:
        rows = stored[f"{stem}.png"]
        expected = labels_with_every_case(np.uint32)
        assert sum(row.kind == "internal" for row in rows) == 1  # the hole of cell 1
        cells = painted(rows)
        assert len(cells) == 4
        for mask in cells.values():  # each traced cell covers exactly one label's pixels
            values = np.unique(expected[mask])
            assert len(values) == 1 and values[0] != 0
            assert mask.sum() == (expected == values[0]).sum()
        border = next(row for row in rows if row.kind == "external" and decode_points(row.points)[:, 0].min() == 0)
        assert decode_points(border.points)[:, 1].max() == HEIGHT  # outlined along the image's border


async def test_a_second_run_skips_what_is_already_there_and_stores_the_rest(served):
    _, token = await served.user("ada@example.com")
    mask = ("a.png", _png(labels_with_every_case(np.uint8)))
    async with served.client(token) as http:
        project_id = await new_project(http)
        first = await upload(http, project_id, [("files", ("a.png", grey_png(1), "image/png")),
                                                ("masks", mask)])
        second = await upload(http, project_id, [("files", ("a.png", grey_png(1), "image/png")),
                                                 ("files", ("b.png", grey_png(2), "image/png")),
                                                 ("masks", mask)])
        changed = await upload(http, project_id, [("files", ("a.png", grey_png(3), "image/png"))])
        project = (await http.get(f"/api/projects/{project_id}")).json()

    assert first.status_code == 201 and second.status_code == 201, second.text
    skipped = second.json()["skipped"]
    assert [(s["file"], s["imageId"]) for s in skipped] == [("a.png", first.json()["images"][0]["id"])]
    assert [image["name"] for image in second.json()["images"]] == ["b.png"]
    assert "b.png: no label image; imported without cells" in second.json()["warnings"]
    assert [image["name"] for image in changed.json()["images"]] == ["a_2.png"]  # same name, other content
    assert [(image["name"], image["polygonCount"]) for image in project["images"]] == [
        ("a.png", 5), ("b.png", 0), ("a_2.png", 0)]


async def test_every_unusable_file_is_named_with_its_reason_and_nothing_is_stored(served):
    _, token = await served.user("ada@example.com")
    async with served.client(token) as http:
        project_id = await new_project(http)
        masks = await upload(http, project_id, [
            ("files", ("good.png", grey_png(1), "image/png")),
            ("files", ("small.png", grey_png(2), "image/png")),
            ("files", ("notes.png", b"not an image", "image/png")),
            ("files", ("rgb.png", grey_png(3), "image/png")),
            ("files", ("float.png", grey_png(4), "image/png")),
            ("masks", ("good.png", _png(labels_with_every_case(np.uint8)))),
            ("masks", ("small.png", _png(np.ones((10, 10), np.uint8)))),
            ("masks", ("rgb.png", _png(np.zeros((HEIGHT, WIDTH, 3), np.uint8)))),
            ("masks", ("float.tif", _tiff(np.zeros((HEIGHT, WIDTH), np.float32)))),
        ])
        coco = await upload(http, project_id, [("files", ("good.png", grey_png(1), "image/png")),
                                               ("coco", ("instances.json", b"{not json", "application/json"))])
        unknown_category = {"images": [{"id": 1, "file_name": "good.png", "width": WIDTH, "height": HEIGHT}],
                            "annotations": [{"id": 1, "image_id": 1, "category_id": 9,
                                             "segmentation": [[1, 1, 5, 1, 5, 5]]}],
                            "categories": [{"id": 1, "name": "cell"}]}
        category = await upload(http, project_id, [
            ("files", ("good.png", grey_png(1), "image/png")),
            ("coco", ("instances.json", json.dumps(unknown_category).encode(), "application/json"))])
        both = await upload(http, project_id, [
            ("files", ("good.png", grey_png(1), "image/png")),
            ("coco", ("instances.json", b"{}", "application/json")),
            ("masks", ("good.png", _png(labels_with_every_case(np.uint8))))])
        twice = await upload(http, project_id, [("files", ("good.png", grey_png(1), "image/png")),
                                                ("files", ("good.png", grey_png(2), "image/png"))])
        project = (await http.get(f"/api/projects/{project_id}")).json()

    assert "Several uploaded files are named good.png" in assert_error(twice, 400, "BAD_REQUEST")["error"]
    rejected = {(item["file"], item.get("image")): item["reason"]
                for item in assert_error(masks, 400, "BAD_REQUEST")["rejected"]}
    assert rejected == {
        ("notes.png", None): "is not a readable image",
        ("small.png", "small.png"): "is 10x10, its image small.png is 96x72",
        ("rgb.png", "rgb.png"): "is a RGB image, not a single-channel label image",
        ("float.tif", "float.png"): "holds float32 values, not integer labels",
    }
    assert "Nothing was stored" in masks.json()["error"]
    assert assert_error(coco, 400, "BAD_REQUEST")["rejected"][0]["file"] == "instances.json"
    assert "unknown category_id 9" in assert_error(category, 400, "BAD_REQUEST")["rejected"][0]["reason"]
    assert assert_error(both, 400, "BAD_REQUEST")["field"] == "masks"
    assert project["imageCount"] == 0
    assert not list((served.runtime.settings.storage_dir / "projects").rglob("*.png"))


async def test_a_coco_file_with_rle_holes_and_multi_part_segmentations_imports_its_cells(served):
    _, token = await served.user("ada@example.com")
    ring = rasterize([[[10, 10], [40, 10], [40, 40], [10, 40]]], HEIGHT, WIDTH).astype(bool)
    ring &= ~rasterize([[[20, 20], [30, 20], [30, 30], [20, 30]]], HEIGHT, WIDTH).astype(bool)
    from pycocotools import mask as coco_mask

    compressed = coco_mask.encode(np.asfortranarray(ring.astype(np.uint8)))
    compressed["counts"] = compressed["counts"].decode()
    document = {
        "images": [{"id": 7, "file_name": "images/a.png", "width": WIDTH, "height": HEIGHT},
                   {"id": 8, "file_name": "elsewhere.png", "width": WIDTH, "height": HEIGHT}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 3, "segmentation": compressed},
            {"id": 2, "image_id": 7, "category_id": 4,  # a part inside another part is its hole; a third part apart
             "segmentation": [[50, 10, 90, 10, 90, 50, 50, 50], [60, 20, 70, 20, 70, 30, 60, 30],
                              [50, 60, 60, 60, 60, 70]]},
            {"id": 3, "image_id": 8, "category_id": 3, "segmentation": [[1, 1, 5, 1, 5, 5]]},
        ],
        "categories": [{"id": 3, "name": "nucleus"}, {"id": 4, "name": "débris µ"}],
    }
    async with served.client(token) as http:
        project_id = await new_project(http)
        response = await upload(http, project_id, [
            ("files", ("a.png", grey_png(1), "image/png")),
            ("coco", ("instances.json", json.dumps(document).encode(), "application/json"))])

    assert response.status_code == 201, response.text
    rows = (await stored_polygons(served, project_id))["a.png"]
    externals = [row for row in rows if row.kind == "external"]
    assert [(row.id, row.class_name) for row in externals] == [
        ("coco-1", "nucleus"), ("coco-2", "débris µ"), ("coco-2.2", "débris µ")]
    holes = [(row.id, row.parent_id) for row in rows if row.kind == "internal"]
    assert holes == [("coco-1-hole-1", "coco-1"), ("coco-2-hole-1", "coco-2")]
    cells = painted(rows)
    assert (cells["coco-1"] == ring).all()  # the RLE's pixels, hole included, exactly
    assert decode_points(next(r for r in rows if r.id == "coco-2").points).tolist() == [
        [50, 10], [90, 10], [90, 50], [50, 50]]


async def test_images_only_and_polygons_as_json_still_upload_as_before(served):
    _, token = await served.user("ada@example.com")
    png, polygons = synthetic_image(4)
    async with served.client(token) as http:
        project_id = await new_project(http)
        response = await upload(http, project_id, [("files", ("s.png", png, "image/png")),
                                                   ("files", ("t.png", grey_png(1), "image/png"))],
                                segmentation=json.dumps({"s.png": polygons}))
    assert response.status_code == 201, response.text
    assert [(i["name"], i["polygonCount"]) for i in response.json()["images"]] == [
        ("s.png", len(polygons)), ("t.png", 0)]  # holes included
    assert response.json()["cells"] == sum(p["type"] == "external" for p in polygons)


async def test_a_label_image_with_more_cells_than_an_image_may_hold_is_refused(served, monkeypatch):
    from exportd.imports import batch

    monkeypatch.setattr(batch, "MAX_POLYGONS", 3)  # the same rule as 10,000, with a small image
    _, token = await served.user("ada@example.com")
    async with served.client(token) as http:
        project_id = await new_project(http)
        response = await upload(http, project_id, [("files", ("a.png", grey_png(1), "image/png")),
                                                   ("masks", ("a.png", _png(labels_with_every_case(np.uint8))))])
    rejected = assert_error(response, 400, "BAD_REQUEST")["rejected"]
    assert rejected == [{"file": "a.png", "reason": "a.png: has 5 polygons; an image holds at most 3",
                         "image": "a.png"}]


async def test_an_rle_of_another_size_than_its_image_and_an_oversized_tiff_are_refused(served, monkeypatch):
    from exportd.imports import labels

    monkeypatch.setattr(labels, "MAX_LABEL_PIXELS", WIDTH * HEIGHT - 1)  # read before any pixel is decoded
    _, token = await served.user("ada@example.com")
    wrong = {"images": [{"id": 1, "file_name": "a.png", "width": 10, "height": 10}],  # it says 10 x 10: it is not
             "annotations": [{"id": 1, "image_id": 1, "category_id": 1,
                              "segmentation": {"size": [10, 10], "counts": [0, 100]}}],
             "categories": [{"id": 1, "name": "cell"}]}
    async with served.client(token) as http:
        project_id = await new_project(http)
        rle = await upload(http, project_id, [("files", ("a.png", grey_png(1), "image/png")),
                                              ("coco", ("c.json", json.dumps(wrong).encode(), "application/json"))])
        tiff = await upload(http, project_id, [("files", ("a.png", grey_png(1), "image/png")),
                                               ("masks", ("a.tif", _tiff(labels_with_every_case())))])
    assert "segmentation.size [10, 10] is not the image's [72, 96]" in assert_error(rle, 400, "BAD_REQUEST")[
        "rejected"][0]["reason"]
    assert assert_error(tiff, 400, "BAD_REQUEST")["rejected"][0]["reason"] == "is too large (72 x 96)"
