"""The export routes over HTTP: start, watch, cancel, download, discard, limits (DESIGN §1, §3, §7)."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from datetime import UTC, datetime, timedelta

import jwt

from tests.acceptance.support import (
    SECRET,
    assert_error,
    assert_log_is_sound,
    export_url,
    held_at_first_item,
    log,
    running,
    start,
    status,
    until_status,
)
from tests.conftest import export_files

JOB_FIELDS = {"id", "projectId", "userId", "status", "progress", "stage", "message", "seq", "createdAt", "startedAt",
              "completedAt", "cancelledAt", "reason", "options", "projectName", "warnings", "exportSize", "fileName"}


async def test_an_export_is_accepted_with_202_and_can_be_followed_to_completion(tmp_path):
    async with running(tmp_path) as app:
        user_id, token = await app.user("ada@example.com")
        project_id, _ = await app.project(token, images=2, name="Spheroids")
        async with app.client(token) as http:
            response = await http.post(export_url(project_id), json={"options": {"annotationFormats": ["coco"]}})
            assert response.status_code == 202, response.text
            job = response.json()
            done = await until_status(http, project_id, job["id"], "completed")
            await app.settled(job["id"])
            stored = await log(http, project_id, job["id"])
            tail = await log(http, project_id, job["id"], after=2)
            past_end = await log(http, project_id, job["id"], after=done["seq"])
            negative = await http.get(export_url(project_id, job["id"], "events"), params={"after": -1})
            beyond_any_seq = await log(http, project_id, job["id"], after=2**64)

    assert JOB_FIELDS <= job.keys()
    assert job["status"] == "pending" and job["seq"] == 1 and job["projectId"] == project_id
    assert job["userId"] == user_id and job["projectName"] == "Spheroids"
    assert job["options"]["annotationFormats"] == ["coco"]
    assert JOB_FIELDS <= done.keys()
    assert done["progress"] == 100 and done["exportSize"] > 0 and done["fileName"].endswith(".zip")
    assert done["startedAt"] and done["completedAt"] and done["cancelledAt"] is None
    assert done["seq"] == len(stored)
    assert_log_is_sound(stored)
    assert stored[-1]["type"] == "export:completed" and stored[-1]["exportSize"] == done["exportSize"]
    assert tail == stored[2:] and past_end == [] and beyond_any_seq == []
    assert_error(negative, 400, "BAD_REQUEST")


async def test_history_lists_the_callers_exports_newest_first(tmp_path):
    async with running(tmp_path) as app:
        _, token = await app.user("ada@example.com")
        _, bob_token = await app.user("bob@example.com")
        project_id, _ = await app.project(token, images=1)
        async with app.client(token) as http, app.client(bob_token) as bob:
            shared = await http.post(f"/api/projects/{project_id}/shares", json={"email": "bob@example.com"})
            assert shared.status_code == 201, shared.text
            started, bobs = [], None
            for round_ in range(3):
                job_id = (await start(http, project_id))["id"]
                await until_status(http, project_id, job_id, "completed")
                started.append(job_id)
                if round_ == 1:  # someone else's export of the same project, in between
                    bobs = (await start(bob, project_id))["id"]
                    await until_status(bob, project_id, bobs, "completed")
            history = (await http.get(export_url(project_id, tail="history"))).json()["jobs"]
            limited = (await http.get(export_url(project_id, tail="history"), params={"limit": 2})).json()["jobs"]
            bob_history = (await bob.get(export_url(project_id, tail="history"))).json()["jobs"]

    assert [job["id"] for job in history] == started[::-1]
    assert [job["id"] for job in limited] == started[:0:-1]
    assert all(job["status"] == "completed" for job in history)
    assert [job["id"] for job in bob_history] == [bobs]


async def test_cancelling_a_pending_export_cancels_it_at_once_and_it_never_starts(tmp_path):
    async with running(tmp_path, hold_completion=True, worker_concurrency=1, max_active_exports_per_user=5) as app:
        _, token = await app.user("ada@example.com")
        project_id, _ = await app.project(token, images=1)
        async with app.client(token) as http:
            busy = (await start(http, project_id))["id"]
            await app.completions.reached(busy)  # the only worker is held
            queued = (await start(http, project_id))["id"]
            assert (await status(http, project_id, queued))["status"] == "pending"

            response = await http.post(export_url(project_id, queued, "cancel"))
            right_after = await status(http, project_id, queued)  # the worker is still busy elsewhere
            app.completions.release(busy)
            # one worker takes jobs in order: once a later job completed, it has passed the cancelled one
            later = (await start(http, project_id))["id"]
            app.completions.release(later)
            await until_status(http, project_id, later, "completed")
            await app.settled(queued)
            final = await status(http, project_id, queued)
            stored = await log(http, project_id, queued)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "cancelled" and body["previousStatus"] == "pending" and body["cancelledAt"]
    assert right_after["status"] == "cancelled" and right_after["cancelledAt"] == body["cancelledAt"]
    assert final["status"] == "cancelled" and final["startedAt"] is None and final["cancelledAt"] == body["cancelledAt"]
    assert [event["type"] for event in stored] == ["export:queued", "export:cancelled"]
    assert_log_is_sound(stored)
    assert app.completions.seen.count(queued) == 0


async def test_five_concurrent_cancels_agree_on_one_cancel(tmp_path):
    async with running(tmp_path, items=1) as app:
        _, token = await app.user("ada@example.com")
        project_id, _ = await app.project(token, images=2)
        async with app.client(token) as http:
            job_id = (await start(http, project_id))["id"]
            await app.items.reached(job_id)
            responses = await asyncio.gather(*(http.post(export_url(project_id, job_id, "cancel")) for _ in range(5)))
            app.items.release(job_id)
            await app.settled(job_id)
            stored = await log(http, project_id, job_id)
            final = await status(http, project_id, job_id)

    assert [response.status_code for response in responses] == [200] * 5, [r.text for r in responses]
    bodies = [response.json() for response in responses]
    assert {body["status"] for body in bodies} == {"cancelled"}
    assert len({body["cancelledAt"] for body in bodies}) == 1
    assert [event["type"] for event in stored].count("export:cancelled") == 1
    assert_log_is_sound(stored)
    assert final["status"] == "cancelled" and final["cancelledAt"] == bodies[0]["cancelledAt"]
    assert list(app.runtime.settings.exports_dir.rglob("*.zip")) == []


async def test_cancelling_twice_returns_the_same_cancelled_at(tmp_path):
    async with running(tmp_path, items=1) as app:
        _, token = await app.user("ada@example.com")
        project_id, _ = await app.project(token, images=2)
        async with app.client(token) as http:
            job_id = (await start(http, project_id))["id"]
            await app.items.reached(job_id)
            first = await http.post(export_url(project_id, job_id, "cancel"))
            app.items.release(job_id)
            await app.settled(job_id)
            second = await http.post(export_url(project_id, job_id, "cancel"))
            stored = await log(http, project_id, job_id)

    assert first.status_code == second.status_code == 200
    assert first.json()["cancelledAt"] == second.json()["cancelledAt"]
    assert second.json()["status"] == "cancelled" and second.json()["previousStatus"] == "processing"
    assert [event["type"] for event in stored].count("export:cancelled") == 1


async def test_cancelling_an_unknown_job_is_404(served):
    _, token = await served.user("ada@example.com")
    project_id, _ = await served.project(token, images=0)
    async with served.client(token) as http:
        unknown_job = await http.post(export_url(project_id, "00000000-0000-0000-0000-000000000000", "cancel"))
        unknown_project = await http.post(export_url("no-such-project", "no-such-job", "cancel"))
    assert_error(unknown_job, 404, "NOT_FOUND")
    assert_error(unknown_project, 404, "NOT_FOUND")


async def test_cancelling_another_users_job_is_404_and_leaves_it_running(tmp_path):
    async with running(tmp_path, items=1) as app:
        _, ada_token = await app.user("ada@example.com")
        _, bob_token = await app.user("bob@example.com")
        project_id, _ = await app.project(ada_token, images=2)
        bob_project, _ = await app.project(bob_token, images=0)
        async with app.client(ada_token) as ada, app.client(bob_token) as bob:
            job_id = (await start(ada, project_id))["id"]
            before = await held_at_first_item(app, ada, project_id, job_id)
            refused = await bob.post(export_url(project_id, job_id, "cancel"))
            refused_via_own_project = await bob.post(export_url(bob_project, job_id, "cancel"))
            after = await status(ada, project_id, job_id)
            app.items.release(job_id)
            done = await until_status(ada, project_id, job_id, "completed")

    assert_error(refused, 404, "NOT_FOUND")
    assert_error(refused_via_own_project, 404, "NOT_FOUND")
    assert before["status"] == after["status"] == "processing" and after == before
    assert done["cancelledAt"] is None


async def test_cancelling_a_completed_job_is_409_with_the_completed_job(tmp_path):
    async with running(tmp_path) as app:
        _, token = await app.user("ada@example.com")
        project_id, _ = await app.project(token, images=1)
        async with app.client(token) as http:
            job_id = (await start(http, project_id))["id"]
            await until_status(http, project_id, job_id, "completed")
            response = await http.post(export_url(project_id, job_id, "cancel"))
            after = await status(http, project_id, job_id)
            download = await http.get(export_url(project_id, job_id, "download"))

    body = assert_error(response, 409, "CONFLICT")
    assert body["job"]["status"] == "completed" and body["job"]["id"] == job_id
    assert after["status"] == "completed" and after["cancelledAt"] is None
    assert download.status_code == 200


async def test_download_answers_by_status(tmp_path):
    """cancelled 410, processing 409, failed 409, completed 200 with a sound ZIP, unknown 404, anonymous 401."""
    async with running(tmp_path, items=1, worker_concurrency=1, max_active_exports_per_user=5) as app:
        _, token = await app.user("ada@example.com")
        project_id, _ = await app.project(token, images=2)
        async with app.client(token) as http, app.client() as anonymous:
            processing = (await start(http, project_id))["id"]
            await app.items.reached(processing)
            # the one worker is busy, so the next job waits; a file where its folder goes makes it fail
            failing = (await start(http, project_id))["id"]
            app.runtime.settings.attempt_dir(failing, 1).write_bytes(b"in the way")
            while_processing = await http.get(export_url(project_id, processing, "download"))
            processing_view = await status(http, project_id, processing)
            while_pending = await http.get(export_url(project_id, failing, "download"))
            app.items.release(processing)
            await until_status(http, project_id, processing, "completed")
            failed = await until_status(http, project_id, failing, "failed")
            when_failed = await http.get(export_url(project_id, failing, "download"))
            cancel_failed = await http.post(export_url(project_id, failing, "cancel"))

            cancelled = (await start(http, project_id))["id"]
            await app.items.reached(cancelled)
            assert (await http.post(export_url(project_id, cancelled, "cancel"))).status_code == 200
            app.items.release(cancelled)
            await app.settled(cancelled)
            when_cancelled = await http.get(export_url(project_id, cancelled, "download"))
            cancelled_view = await status(http, project_id, cancelled)

            completed = await http.get(export_url(project_id, processing, "download"))
            unknown = await http.get(export_url(project_id, "00000000-0000-0000-0000-000000000000", "download"))
            anonymous_response = await anonymous.get(export_url(project_id, processing, "download"))
            failed_log = await log(http, project_id, failing)
            done = await status(http, project_id, processing)

    assert_error(while_processing, 409, "CONFLICT")
    assert processing_view["downloadUrl"] is None and cancelled_view["downloadUrl"] is None
    assert done["downloadUrl"] == export_url(project_id, processing, "download") and done["available"] is True
    assert_error(while_pending, 409, "CONFLICT")
    assert failed["error"] and failed["errorCode"] == "EXPORT_ERROR"
    assert failed_log[-1]["type"] == "export:failed"
    assert_log_is_sound(failed_log)
    assert_error(when_failed, 409, "CONFLICT")
    assert assert_error(cancel_failed, 409, "CONFLICT")["job"]["status"] == "failed"
    assert_error(when_cancelled, 410, "GONE")
    assert_error(unknown, 404, "NOT_FOUND")
    assert_error(anonymous_response, 401, "UNAUTHORIZED")

    assert completed.status_code == 200, completed.text
    assert completed.headers["content-type"] == "application/zip"
    assert int(completed.headers["content-length"]) == len(completed.content) == done["exportSize"]
    assert done["fileName"] in completed.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(completed.content)) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        metadata = json.loads(archive.read("metadata.json"))
    assert "metadata.json" in names and any(name.startswith("images/") for name in names)
    assert processing in json.dumps(metadata)


async def test_a_download_token_opens_its_own_completed_export_and_nothing_else(tmp_path):
    async with running(tmp_path, items=1) as app:
        user_id, token = await app.user("ada@example.com")
        project_id, _ = await app.project(token, images=1)
        async with app.client(token) as http, app.client() as browser:
            first = (await start(http, project_id))["id"]
            app.items.release(first)
            await until_status(http, project_id, first, "completed")
            second = (await start(http, project_id))["id"]
            await app.items.reached(second)
            too_early = await http.post(export_url(project_id, second, "download-token"))
            app.items.release(second)
            await until_status(http, project_id, second, "completed")

            issued = await http.post(export_url(project_id, first, "download-token"))
            grant = issued.json()
            with_token = await browser.get(export_url(project_id, first, "download"), params={"token": grant["token"]})
            via_url = await browser.get(grant["url"])
            other_job = await browser.get(export_url(project_id, second, "download"), params={"token": grant["token"]})
            forged = await browser.get(export_url(project_id, first, "download"),
                                       params={"token": grant["token"] + "x"})
            access_as_download = await browser.get(export_url(project_id, first, "download"), params={"token": token})
            expired_grant = jwt.encode({"sub": user_id, "typ": "download", "job": first,
                                        "exp": datetime.now(UTC) - timedelta(seconds=1)}, SECRET, algorithm="HS256")
            expired = await browser.get(export_url(project_id, first, "download"), params={"token": expired_grant})
            first_zip = await http.get(export_url(project_id, first, "download"))

    assert issued.status_code == 200, issued.text
    assert grant["token"] and grant["expiresAt"].endswith("Z")
    assert_error(too_early, 409, "CONFLICT")
    assert with_token.status_code == 200 and with_token.content == first_zip.content
    assert via_url.status_code == 200 and via_url.content == first_zip.content
    assert_error(other_job, 401, "UNAUTHORIZED")
    assert_error(forged, 401, "UNAUTHORIZED")
    assert_error(access_as_download, 401, "UNAUTHORIZED")
    assert_error(expired, 401, "UNAUTHORIZED")


async def test_a_discarded_export_is_gone_and_leaves_the_history(tmp_path):
    async with running(tmp_path, items=1) as app:
        _, token = await app.user("ada@example.com")
        project_id, _ = await app.project(token, images=1)
        async with app.client(token) as http:
            running_job = (await start(http, project_id))["id"]
            await app.items.reached(running_job)
            while_active = await http.delete(export_url(project_id, running_job))
            app.items.release(running_job)
            done = await until_status(http, project_id, running_job, "completed")
            discarded = await http.delete(export_url(project_id, running_job))
            download = await http.get(export_url(project_id, running_job, "download"))
            history = (await http.get(export_url(project_id, tail="history"))).json()["jobs"]
            after = await status(http, project_id, running_job)
            stored = await log(http, project_id, running_job)

    assert_error(while_active, 409, "CONFLICT")
    assert discarded.status_code == 204 and discarded.content == b""
    assert_error(download, 410, "GONE")
    assert running_job not in [job["id"] for job in history]
    assert after["status"] == "completed" and after["available"] is False and after["downloadUrl"] is None
    assert stored[-1]["type"] == "export:completed"  # the record stays readable
    assert done["fileName"] and export_files(app.runtime.settings, running_job) == []


async def test_a_second_start_while_one_is_active_is_429_for_that_user_only(tmp_path):
    async with running(tmp_path, items=1) as app:
        _, ada_token = await app.user("ada@example.com")
        _, bob_token = await app.user("bob@example.com")
        ada_project, _ = await app.project(ada_token, images=1)
        bob_project, _ = await app.project(bob_token, images=1)
        async with app.client(ada_token) as ada, app.client(bob_token) as bob:
            active = (await start(ada, ada_project))["id"]
            await app.items.reached(active)
            second = await ada.post(export_url(ada_project), json={})
            others = await bob.post(export_url(bob_project), json={})
            app.items.release(active)
            await until_status(ada, ada_project, active, "completed")
            after = await ada.post(export_url(ada_project), json={})

    body = assert_error(second, 429, "RATE_LIMIT_EXCEEDED")
    assert int(second.headers["Retry-After"]) > 0
    assert body["error"]
    assert [(job["id"], job["projectId"], job["status"]) for job in body["active"]] == [
        (active, ada_project, "processing")]  # which export is in the way
    assert others.status_code == 202, others.text
    assert after.status_code == 202, after.text


async def test_concurrent_starts_by_one_user_create_exactly_one_job(tmp_path):
    async with running(tmp_path, items=1) as app:
        _, token = await app.user("ada@example.com")
        project_id, _ = await app.project(token, images=1)
        async with app.client(token) as http:
            responses = await asyncio.gather(*(http.post(export_url(project_id), json={}) for _ in range(5)))
            history = (await http.get(export_url(project_id, tail="history"))).json()["jobs"]

    codes = sorted(response.status_code for response in responses)
    assert codes == [202, 429, 429, 429, 429], [response.text for response in responses]
    accepted = next(response.json() for response in responses if response.status_code == 202)
    assert [job["id"] for job in history] == [accepted["id"]]


async def test_an_idempotency_key_returns_the_same_job_and_refuses_a_different_body(tmp_path):
    async with running(tmp_path, items=1) as app:
        _, token = await app.user("ada@example.com")
        project_id, _ = await app.project(token, images=1)
        async with app.client(token) as http:
            key = {"Idempotency-Key": "export-42"}
            body = {"options": {"annotationFormats": ["json"]}}
            first = await http.post(export_url(project_id), json=body, headers=key)
            replay = await http.post(export_url(project_id), json=body, headers=key)
            different = await http.post(export_url(project_id), json={"options": {"annotationFormats": ["coco"]}},
                                        headers=key)
            app.items.release(first.json()["id"])
            await until_status(http, project_id, first.json()["id"], "completed")
            replay_after = await http.post(export_url(project_id), json=body, headers=key)
            together = await asyncio.gather(*(http.post(export_url(project_id), json=body,
                                                        headers={"Idempotency-Key": "export-43"}) for _ in range(5)))
            app.items.release(together[0].json()["id"])
            history = (await http.get(export_url(project_id, tail="history"))).json()["jobs"]
            history = [job for job in history if job["id"] != together[0].json()["id"]]

    assert first.status_code == replay.status_code == 202
    assert replay.json()["id"] == first.json()["id"]  # not a 429: the replay creates nothing
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert_error(different, 409, "CONFLICT")
    assert replay_after.status_code == 202 and replay_after.json()["id"] == first.json()["id"]
    assert [response.status_code for response in together] == [202] * 5
    assert len({response.json()["id"] for response in together}) == 1
    assert [job["id"] for job in history] == [first.json()["id"]]


async def test_ten_rapid_start_cancel_cycles_are_all_cancelled_with_sound_logs(tmp_path):
    async with running(tmp_path, items=1) as app:
        _, token = await app.user("ada@example.com")
        project_id, _ = await app.project(token, images=2)
        async with app.client(token) as http:
            jobs, cancels = [], []
            for _ in range(10):
                job_id = (await start(http, project_id))["id"]
                cancels.append(await http.post(export_url(project_id, job_id, "cancel")))
                app.items.release(job_id)  # if it had reached the gate, let it see the cancel
                jobs.append(job_id)
            for job_id in jobs:
                await app.settled(job_id)
            finals = [await status(http, project_id, job_id) for job_id in jobs]
            logs = [await log(http, project_id, job_id) for job_id in jobs]

    assert [response.status_code for response in cancels] == [200] * 10
    assert [job["status"] for job in finals] == ["cancelled"] * 10
    for stored in logs:
        assert_log_is_sound(stored)
        assert stored[-1]["type"] == "export:cancelled"
        assert "export:completed" not in [event["type"] for event in stored]
    assert list(app.runtime.settings.exports_dir.rglob("*.zip")) == []
