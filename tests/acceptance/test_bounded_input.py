"""What the API accepts always exports: polygons are bounded, near their image, with finite
coordinates and printable class names; anything else is a 400 in the contract's shape."""

from __future__ import annotations

import json

import pytest

from exportd.domain import requests
from exportd.domain.limits import MAX_POINTS_PER_POLYGON
from tests.acceptance.support import assert_error, export_url, start, until_status

WIDTH, HEIGHT = 512, 384  # the synthetic images' size
SQUARE = [[10, 10], [60, 10], [60, 60], [10, 60]]
EVERYTHING = {
    "includeOriginalImages": True, "includeVisualizations": True, "includeDocumentation": True,
    "annotationFormats": ["coco", "yolo", "json"], "metricsFormats": ["excel", "csv", "json"],
}


def ring(count: int, cx: float = 200, cy: float = 150, radius: float = 100) -> list[list[float]]:
    import math
    return [[cx + radius * math.cos(2 * math.pi * k / count), cy + radius * math.sin(2 * math.pi * k / count)]
            for k in range(count)]


REFUSED = {
    "a control character in a class name": ({"className": "cell\u0001"}, "className"),
    "a newline in a class name": ({"className": "cell\nnext"}, "className"),
    "coordinates of 1e20": ({"points": [[1e20, 0], [1, 0], [1, 1]]}, "polygons.0"),
    "coordinates of 1e308": ({"points": [[0, 0], [1e308, 1e308], [0, 1]]}, "polygons.0"),
    "a point far left of the image": ({"points": [[-WIDTH / 2 - 1, 0], [10, 0], [10, 10]]}, "polygons.0"),
    "a point far below the image": ({"points": [[0, 0], [10, 1.5 * HEIGHT + 1], [10, 10]]}, "polygons.0"),
    "two distinct points": ({"points": [[0, 0], [10, 10], [0, 0], [10, 10]]}, "points"),
    "too many points": ({"points": ring(MAX_POINTS_PER_POLYGON + 1)}, "points"),
}


@pytest.mark.parametrize("name", REFUSED)
async def test_a_polygon_that_could_not_export_is_refused_with_400_naming_why(served, name):
    change, named = REFUSED[name]
    _, token = await served.user("ada@example.com")
    project_id, image_ids = await served.project(token, images=1)
    polygon = {"type": "external", "points": SQUARE, **change}
    async with served.client(token) as http:
        put = await http.put(f"/api/projects/{project_id}/images/{image_ids[0]}/segmentation",
                             json={"polygons": [polygon]})
        upload = await http.post(f"/api/projects/{project_id}/images",
                                 files=[("files", ("more.png", _png(), "image/png"))],
                                 data={"segmentation": json.dumps({"more.png": [polygon]})})
        project = (await http.get(f"/api/projects/{project_id}")).json()
    assert named in assert_error(put, 400, "BAD_REQUEST")["error"]
    assert named in assert_error(upload, 400, "BAD_REQUEST")["error"]
    assert project["imageCount"] == 1 and project["images"][0]["polygonCount"] > 1  # nothing changed


async def test_polygons_at_every_limit_are_accepted_and_export_with_every_format(served):
    _, token = await served.user("ada@example.com")
    project_id, image_ids = await served.project(token, images=1)
    at_the_limits = [
        {"id": "big", "type": "external", "points": ring(MAX_POINTS_PER_POLYGON), "className": "Zelle ä 細胞"},
        {"id": "edge", "type": "external", "className": "edge",
         "points": [[-WIDTH / 2, -HEIGHT / 2], [1.5 * WIDTH, -HEIGHT / 2], [1.5 * WIDTH, 1.5 * HEIGHT]]},
        {"id": "tangle", "type": "external", "points": [[0, 0], [50, 50], [50, 0], [0, 50]]},
    ]
    async with served.client(token) as http:
        put = await http.put(f"/api/projects/{project_id}/images/{image_ids[0]}/segmentation",
                             json={"polygons": at_the_limits})
        job_id = (await start(http, project_id, {"options": EVERYTHING}))["id"]
        done = await until_status(http, project_id, job_id, "completed", "failed", timeout=60)
    assert put.status_code == 200, put.text
    assert done["status"] == "completed", done
    assert any("tangle" in warning for warning in done["warnings"])


def test_an_image_holds_a_bounded_number_of_points_in_all(monkeypatch):
    monkeypatch.setattr(requests, "MAX_POINTS_PER_IMAGE", 10)
    polygon = {"type": "external", "points": SQUARE}
    assert len(requests.IMAGE_POLYGONS.validate_python([polygon, polygon])) == 2
    with pytest.raises(ValueError, match="at most 10 points in all, not 12"):
        requests.IMAGE_POLYGONS.validate_python([polygon, polygon, polygon])


def _png() -> bytes:
    import io

    from PIL import Image
    buffer = io.BytesIO()
    Image.new("L", (WIDTH, HEIGHT), 128).save(buffer, "PNG")
    return buffer.getvalue()


async def test_an_export_with_nothing_selected_is_400_naming_why_and_queues_nothing(served):
    _, token = await served.user("ada@example.com")
    project_id, _ = await served.project(token, images=1)
    nothing = {"includeOriginalImages": False, "includeVisualizations": False, "includeDocumentation": False,
               "annotationFormats": [], "metricsFormats": []}
    async with served.client(token) as http:
        refused = await http.post(export_url(project_id), json={"options": nothing})
        documentation_only = await http.post(export_url(project_id),
                                             json={"options": {**nothing, "includeDocumentation": True}})
        history = (await http.get(export_url(project_id, tail="history"))).json()["jobs"]
    body = assert_error(refused, 400, "BAD_REQUEST")
    assert body["field"] == "options" and "nothing is selected" in body["error"]
    assert documentation_only.status_code == 202, documentation_only.text
    assert len(history) == 1


async def test_an_image_too_large_to_draw_once_decoded_is_refused_at_upload(served):
    import io

    from PIL import Image
    _, token = await served.user("ada@example.com")
    project_id, _ = await served.project(token, images=0)
    buffer = io.BytesIO()
    Image.new("RGB", (6000, 5000), (20, 40, 60)).save(buffer, "PNG")  # 30 Mpx, but 114 MiB as RGB
    async with served.client(token) as http:
        refused = await http.post(f"/api/projects/{project_id}/images",
                                  files=[("files", ("wide.png", buffer.getvalue(), "image/png"))])
    body = assert_error(refused, 400, "BAD_REQUEST")
    assert "114 MiB once decoded" in body["error"], body


async def test_an_image_its_overlay_would_decode_whole_past_the_budget_is_refused_and_its_streamed_twin_accepted(served):
    """An LZW TIFF (which tifffile decodes only with imagecodecs) is drawn from its whole decoded pixels:
    over 64 MiB of them it is refused, with the encodings that are accepted; the same pixels as a
    zip-compressed TIFF, read a strip at a time, are accepted."""
    import io

    from PIL import Image
    _, token = await served.user("ada@example.com")
    project_id, _ = await served.project(token, images=0)
    picture = Image.new("RGB", (4500, 4000), (20, 40, 60))  # 18 Mpx: 69 MiB as Pillow holds RGB
    files = {}
    for name, compression in (("lzw.tif", "tiff_lzw"), ("zip.tif", "tiff_adobe_deflate")):
        buffer = io.BytesIO()
        picture.save(buffer, "TIFF", compression=compression)
        files[name] = buffer.getvalue()
    async with served.client(token) as http:
        refused = await http.post(f"/api/projects/{project_id}/images",
                                  files=[("files", ("lzw.tif", files["lzw.tif"], "image/tiff"))])
        accepted = await http.post(f"/api/projects/{project_id}/images",
                                   files=[("files", ("zip.tif", files["zip.tif"], "image/tiff"))])
    body = assert_error(refused, 400, "BAD_REQUEST")
    assert "holds 69 MiB; at most 64 MiB" in body["error"] and "zip-compressed TIFF" in body["error"], body
    assert accepted.status_code == 201, accepted.text
    assert "zip.tif" in accepted.text and "lzw.tif" not in accepted.text, accepted.text
