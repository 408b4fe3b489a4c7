"""Clients written for the replaced platform keep working: the fields they read are sent beside exportd's own."""

from __future__ import annotations

from tests.acceptance.support import export_url, log, running, start


async def test_the_start_answer_progress_and_cancel_events_carry_the_fields_old_clients_read(tmp_path):
    async with running(tmp_path, items=1) as app:
        _, token = await app.user("ada@example.com")
        project_id, _ = await app.project(token, images=2)
        sock = await app.socket(token)
        async with app.client(token) as http:
            names = {image["name"] for image in (await http.get(f"/api/projects/{project_id}")).json()["images"]}
            job = await start(http, project_id)
            await app.items.reached(job["id"])  # held after one item: a progress event is written
            progress, _ = await sock.wait_for(job["id"], "export:progress")
            cancelled = await http.post(export_url(project_id, job["id"], "cancel"))
            event, _ = await sock.wait_for(job["id"], "export:cancelled")
            app.items.release(job["id"])
            await app.settled(job["id"])
            stored = await log(http, project_id, job["id"])

    assert job["success"] is True and job["jobId"] == job["id"] and job["status"] == "pending"
    assert progress["phase"] == "processing" and progress["progress"] < 90
    assert progress["stageProgress"]["currentItem"] in names
    assert progress["stageProgress"]["current"] == 1 and progress["stage"]  # exportd's own fields stay
    assert cancelled.status_code == 200
    assert event["message"] == "Export cancelled by user"
    assert event["reason"] == "user_cancelled" and event["previousStatus"] == "processing"
    assert [e for e in stored if e["type"] == "export:cancelled"] == [event]  # stored as sent
