"""Export file names people can read, in their language, end to end: the ZIP, its entries, the download."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime
from urllib.parse import quote

from exportd.client import ExportdClient
from exportd.synthetic import synthetic_project
from tests.acceptance.support import export_url, running, start, until_status

FAST = {"includeVisualizations": False, "annotationFormats": ["coco"], "metricsFormats": []}


def readable(project: str, created_at: str, tail: str = "") -> str:
    """The name the server gives: project, start time in the server's zone, and a tail."""
    started = datetime.fromisoformat(created_at.replace("Z", "+00:00")).astimezone()
    return f"{project}_{started:%Y-%m-%d_%H%M}{tail}.zip"


async def test_a_czech_project_and_image_name_survive_to_the_downloaded_file_and_its_entries(tmp_path):
    async with running(tmp_path) as app:
        await app.user("ada@example.com")
        client = ExportdClient(app.url)
        token = await client.login("ada@example.com", "correct horse")
        project_id, _ = await app.project(token, images=0, name="Buňky žluté")
        _, png, _ = next(iter(synthetic_project(count=1, seed=3)))
        async with app.client(token) as http:
            uploaded = await http.post(f"/api/projects/{project_id}/images",
                                       files=[("files", ("buňka 01.png", png, "image/png"))])
            assert uploaded.status_code == 201, uploaded.text
            assert uploaded.json()["images"][0]["name"] == "buňka 01.png"
            job = await start(http, project_id, {"options": FAST})
            done = await until_status(http, project_id, job["id"], "completed")
            download = await http.get(export_url(project_id, job["id"], "download"))
        async with client:
            saved = await client.download(job["id"], tmp_path, project_id)

    expected = readable("Buňky_žluté", done["createdAt"])
    assert done["fileName"] == expected
    assert download.status_code == 200
    disposition = download.headers["content-disposition"]
    assert f"filename*=UTF-8''{quote(expected, safe='')}" in disposition
    assert f'filename="{readable("Bunky_zlute", done["createdAt"])}"' in disposition
    assert saved == tmp_path / expected and saved.read_bytes() == download.content
    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        assert "images/buňka 01.png" in archive.namelist()


async def test_a_users_second_export_started_in_the_same_minute_gets_a_short_id_and_never_the_same_name(tmp_path):
    async with running(tmp_path) as app:
        _, token = await app.user("ada@example.com")
        project_id, _ = await app.project(token, images=1, name="Demo spheroids")
        async with app.client(token) as http:
            jobs = []
            for _ in range(3):
                job = await start(http, project_id, {"options": FAST})
                jobs.append(await until_status(http, project_id, job["id"], "completed"))

    names = [job["fileName"] for job in jobs]
    assert len(set(names)) == 3
    assert names[0] == readable("Demo_spheroids", jobs[0]["createdAt"])
    for earlier, job in zip(jobs, jobs[1:], strict=False):
        plain = readable("Demo_spheroids", job["createdAt"])
        same_minute = plain in names[: jobs.index(job)]
        assert job["fileName"] == (readable("Demo_spheroids", job["createdAt"], f"_{job['id'][:8]}")
                                   if same_minute else plain), (earlier["fileName"], job["fileName"])
