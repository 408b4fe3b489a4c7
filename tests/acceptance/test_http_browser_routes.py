"""The small routes the browser UI needs: thumbnails for the image picker, the session check,
the dialog's defaults and the history's pages (DESIGN §3 where it speaks; docs/browser.md)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from tests.acceptance.support import assert_error, export_url, running, start, until_status


def thumbnail_url(project_id: str, image_id: str) -> str:
    return f"/api/projects/{project_id}/images/{image_id}/thumbnail"


def tiff_16_bit(width: int = 640, height: int = 480) -> bytes:
    """A dim 16-bit microscopy-like image: values 1000–1400 of 65,535."""
    gradient = np.linspace(1000, 1400, width * height, dtype=np.uint16).reshape(height, width)
    out = io.BytesIO()
    Image.fromarray(gradient).save(out, "TIFF")
    return out.getvalue()


async def test_a_thumbnail_is_a_small_jpeg_cached_by_etag_and_only_for_who_sees_the_image(served):
    _, ada = await served.user("ada@example.com")
    _, bob = await served.user("bob@example.com")
    project_id, image_ids = await served.project(ada, images=1)
    async with served.client(ada) as http:
        uploaded = await http.post(f"/api/projects/{project_id}/images",
                                   files=[("files", ("deep.tif", tiff_16_bit(), "image/tiff"))])
        deep_id = uploaded.json()["images"][0]["id"]
        first = await http.get(thumbnail_url(project_id, image_ids[0]))
        again = await http.get(thumbnail_url(project_id, image_ids[0]),
                               headers={"If-None-Match": first.headers["etag"]})
        deep = await http.get(thumbnail_url(project_id, deep_id))
        unknown = await http.get(thumbnail_url(project_id, "no-such-image"))
        elsewhere = await http.get(thumbnail_url("no-such-project", image_ids[0]))
    async with served.client(bob) as http:
        stranger = await http.get(thumbnail_url(project_id, image_ids[0]))
    async with served.client() as http:
        anonymous = await http.get(thumbnail_url(project_id, image_ids[0]))

    assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(first.content)) as picture:
        assert picture.format == "JPEG" and max(picture.size) <= 160
    assert first.headers["etag"] and "private" in first.headers["cache-control"]
    assert "max-age=" in first.headers["cache-control"]
    assert again.status_code == 304 and again.content == b""
    assert deep.status_code == 200
    with Image.open(io.BytesIO(deep.content)) as picture:
        pixels = np.asarray(picture.convert("L"))
    assert pixels.max() - pixels.min() > 200, "a dim 16-bit image is stretched, not left black"
    assert_error(unknown, 404, "NOT_FOUND")
    assert_error(elsewhere, 404, "NOT_FOUND")
    assert_error(stranger, 404, "NOT_FOUND")  # another user's image does not exist for Bob
    assert_error(anonymous, 401, "UNAUTHORIZED")


async def test_an_image_whose_file_is_damaged_has_no_thumbnail_and_no_500(served):
    _, ada = await served.user("ada@example.com")
    project_id, image_ids = await served.project(ada, images=2)
    stored = sorted(served.runtime.settings.data_dir.rglob(f"projects/{project_id}/*.png"))
    stored[0].write_bytes(b"not an image any more")
    stored[1].unlink()
    async with served.client(ada) as http:
        answers = [await http.get(thumbnail_url(project_id, image_id)) for image_id in image_ids]

    for answer in answers:
        body = assert_error(answer, 404, "NOT_FOUND")
        assert "/" not in body["error"], "no server path in the answer"


async def test_the_session_route_answers_200_with_or_without_a_session(served):
    async with served.client() as http:
        anonymous = await http.get("/api/auth/session")
        await http.post("/api/auth/register", json={"email": "ada@example.com", "password": "correct horse"})
        await http.post("/api/auth/login", json={"email": "ada@example.com", "password": "correct horse"})
        signed_in = await http.get("/api/auth/session")
    async with served.client() as http:
        http.cookies.set("access_token", "not-a-token")
        forged = await http.get("/api/auth/session")

    assert anonymous.status_code == 200 and anonymous.json()["user"] is None
    assert signed_in.status_code == 200 and signed_in.json()["user"]["email"] == "ada@example.com"
    assert forged.status_code == 200 and forged.json()["user"] is None
    assert "access_token=" in forged.headers.get("set-cookie", "")  # the stale cookie is cleared


async def test_the_history_pages_past_its_first_page_without_repeats(tmp_path):
    async with running(tmp_path, max_active_exports_per_user=10) as app:
        _, token = await app.user("ada@example.com")
        project_id, _ = await app.project(token, images=1)
        options = {"includeOriginalImages": False, "includeVisualizations": False, "includeDocumentation": True,
                   "annotationFormats": [], "metricsFormats": []}
        async with app.client(token) as http:
            jobs = [(await start(http, project_id, {"options": options}))["id"] for _ in range(5)]
            for job_id in jobs:
                await until_status(http, project_id, job_id, "completed")
            first = await http.get(export_url(project_id, tail="history"), params={"limit": 2})
            second = await http.get(export_url(project_id, tail="history"), params={"limit": 2, "offset": 2})
            last = await http.get(export_url(project_id, tail="history"), params={"limit": 2, "offset": 4})
            negative = await http.get(export_url(project_id, tail="history"), params={"offset": -1})

    pages = [[job["id"] for job in page.json()["jobs"]] for page in (first, second, last)]
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [job_id for page in pages for job_id in page] == list(reversed(jobs))  # newest first, each once
    assert_error(negative, 400, "BAD_REQUEST")
