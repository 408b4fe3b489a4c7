"""Accounts, access and input over HTTP: who may do what, what is refused and how (DESIGN §3, §4)."""

from __future__ import annotations

import json

import pytest

from exportd.domain.options import ExportOptions
from tests.acceptance.support import (
    assert_error,
    assert_log_is_sound,
    export_url,
    running,
    start,
    status,
    until_status,
)
from tests.acceptance.support import access_token as signed_token

NOBODY = "00000000-0000-0000-0000-000000000000"


def export_routes(project_id: str, job_id: str) -> list[tuple[str, str]]:
    """Every route that touches an export, as (method, path)."""
    return [
        ("POST", export_url(project_id)),
        ("GET", export_url(project_id, job_id, "status")),
        ("GET", export_url(project_id, job_id, "events")),
        ("POST", export_url(project_id, job_id, "cancel")),
        ("POST", export_url(project_id, job_id, "download-token")),
        ("GET", export_url(project_id, job_id, "download")),
        ("DELETE", export_url(project_id, job_id)),
        ("GET", export_url(project_id, tail="history")),
    ]


async def test_login_sets_an_http_only_cookie_that_alone_authenticates_until_logout(served):
    async with served.client() as http:
        registered = await http.post("/api/auth/register", json={"email": " Ada@Example.com ",
                                                                 "password": "correct horse"})
        login = await http.post("/api/auth/login", json={"email": "ada@example.com", "password": "correct horse"})
        me = await http.get("/api/auth/me")  # the cookie jar only: no Authorization header
        logout = await http.post("/api/auth/logout")
        me_after_logout = await http.get("/api/auth/me")
    async with served.client() as bearer:
        me_by_bearer = await bearer.get("/api/auth/me", headers={"Authorization": f"Bearer {login.json()['token']}"})
    async with served.client() as cookie_only:
        cookie_only.cookies.set("access_token", login.json()["token"])
        me_by_cookie = await cookie_only.get("/api/auth/me")
        projects_by_cookie = await cookie_only.get("/api/projects")

    assert registered.status_code == 201, registered.text
    user = registered.json()["user"]
    assert user["email"] == "ada@example.com" and "password" not in json.dumps(registered.json()).lower()
    assert login.status_code == 200 and login.json()["token"] and login.json()["user"]["id"] == user["id"]
    cookie = login.headers["set-cookie"].lower()
    assert cookie.startswith("access_token=") and "httponly" in cookie and "path=/" in cookie
    assert me.status_code == 200 and me.json()["user"]["id"] == user["id"]
    assert logout.status_code == 200
    cleared = logout.headers["set-cookie"].lower()
    assert cleared.startswith("access_token=") and ("max-age=0" in cleared or "expires=" in cleared)
    assert_error(me_after_logout, 401, "UNAUTHORIZED")
    assert me_by_bearer.status_code == 200
    assert me_by_cookie.status_code == 200 and me_by_cookie.json()["user"]["id"] == user["id"]
    assert projects_by_cookie.status_code == 200


async def test_a_taken_email_is_409_and_a_wrong_password_is_401(served):
    await served.user("ada@example.com")
    async with served.client() as http:
        taken = await http.post("/api/auth/register", json={"email": "ADA@example.com", "password": "another pass"})
        wrong = await http.post("/api/auth/login", json={"email": "ada@example.com", "password": "wrong horse"})
        unknown = await http.post("/api/auth/login", json={"email": "eve@example.com", "password": "wrong horse"})
        short = await http.post("/api/auth/register", json={"email": "bob@example.com", "password": "short"})
        not_an_email = await http.post("/api/auth/register", json={"email": "bob", "password": "long enough"})

    assert_error(taken, 409, "CONFLICT")
    assert_error(wrong, 401, "UNAUTHORIZED")
    assert_error(unknown, 401, "UNAUTHORIZED")
    assert wrong.json()["error"] == unknown.json()["error"]  # no hint which accounts exist
    assert assert_error(short, 400, "BAD_REQUEST")["field"] == "password"
    assert assert_error(not_an_email, 400, "BAD_REQUEST")["field"] == "email"


async def test_every_export_route_refuses_missing_forged_and_expired_tokens_with_401(tmp_path):
    async with running(tmp_path) as app:
        user_id, token = await app.user("ada@example.com")
        project_id, _ = await app.project(token, images=1)
        async with app.client(token) as http:
            job_id = (await start(http, project_id))["id"]
            await until_status(http, project_id, job_id, "completed")
        forged = signed_token(user_id, secret="another-secret-with-enough-entropy-0123456789")
        credentials = {
            "none": {},
            "bearer without a token": {"Authorization": "Bearer"},
            "another scheme": {"Authorization": f"Basic {token}"},
            "garbage bearer": {"Authorization": "Bearer not-a-jwt"},
            "forged bearer": {"Authorization": f"Bearer {forged}"},
            "expired bearer": {"Authorization": f"Bearer {signed_token(user_id, expires_in=-60)}"},
            "unknown user": {"Authorization": f"Bearer {signed_token(NOBODY)}"},
            "forged cookie": {"Cookie": f"access_token={forged}"},
            "expired cookie": {"Cookie": f"access_token={signed_token(user_id, expires_in=-60)}"},
        }
        refused = []
        async with app.client() as http:
            for name, headers in credentials.items():
                for method, path in export_routes(project_id, job_id):
                    response = await http.request(method, path, headers=headers, json={} if method == "POST" else None)
                    refused.append((name, method, path, response))
        async with app.client(token) as owner:
            after = await status(owner, project_id, job_id)

    for name, method, path, response in refused:
        assert response.status_code == 401, (name, method, path, response.status_code, response.text)
        assert_error(response, 401, "UNAUTHORIZED")
    assert after["status"] == "completed" and after["fileName"]


async def test_another_users_project_and_job_are_404_on_every_export_route(tmp_path):
    async with running(tmp_path) as app:
        _, ada_token = await app.user("ada@example.com")
        _, bob_token = await app.user("bob@example.com")
        project_id, _ = await app.project(ada_token, images=1)
        bob_project, _ = await app.project(bob_token, images=1)
        async with app.client(ada_token) as ada, app.client(bob_token) as bob:
            job_id = (await start(ada, project_id))["id"]
            before = await until_status(ada, project_id, job_id, "completed")
            refused = []
            for project in (project_id, bob_project):
                for method, path in export_routes(project, job_id):
                    if project == bob_project and path.endswith(("/export", "/history")):
                        continue  # bob's own project: these are his to use
                    response = await bob.request(method, path, json={} if method == "POST" else None)
                    refused.append((method, path, response))
            project_view = await bob.get(f"/api/projects/{project_id}")
            after = await status(ada, project_id, job_id)
            download = await ada.get(export_url(project_id, job_id, "download"))
            history = (await ada.get(export_url(project_id, tail="history"))).json()["jobs"]

    for method, path, response in refused:
        assert response.status_code == 404, (method, path, response.status_code, response.text)
        assert_error(response, 404, "NOT_FOUND")
    assert_error(project_view, 404, "NOT_FOUND")
    assert after == before  # not cancelled, not discarded
    assert download.status_code == 200 and [job["id"] for job in history] == [job_id]


BAD_OPTIONS = {
    "an unknown option": ({"options": {"includeEverything": True}}, "options.includeEverything"),
    "an unknown top-level field": ({"options": {}, "format": "zip"}, "format"),
    "a string for a boolean": ({"options": {"includeOriginalImages": "yes"}}, "options.includeOriginalImages"),
    "a number for a list": ({"options": {"annotationFormats": 3}}, "options.annotationFormats"),
    "options that are not an object": ({"options": "all"}, "options"),
    "a scale of 0": ({"options": {"pixelToMicrometerScale": 0}}, "options.pixelToMicrometerScale"),
    "a scale of 2000": ({"options": {"pixelToMicrometerScale": 2000}}, "options.pixelToMicrometerScale"),
    "a scale given as text": ({"options": {"pixelToMicrometerScale": "0.5"}}, "options.pixelToMicrometerScale"),
    "an unknown annotation format": ({"options": {"annotationFormats": ["bogus"]}}, "options.annotationFormats.0"),
    "an unknown metrics format": ({"options": {"metricsFormats": ["pdf"]}}, "options.metricsFormats.0"),
    "unknown selected images": ({"options": {"selectedImageIds": ["no-such-image"]}}, "options.selectedImageIds"),
    "no selected images": ({"options": {"selectedImageIds": []}}, "options.selectedImageIds"),
    "a colour that is not hex": ({"options": {"visualizationOptions": {"polygonColors": {"external": "green"}}}},
                                 "options.visualizationOptions.polygonColors.external"),
    "an empty project name": ({"projectName": ""}, "projectName"),
}


@pytest.mark.parametrize("body, field", BAD_OPTIONS.values(), ids=BAD_OPTIONS.keys())
async def test_invalid_export_options_are_a_400_that_names_the_field(served, body, field):
    _, token = await served.user("ada@example.com")
    project_id, _ = await served.project(token, images=1)
    async with served.client(token) as http:
        response = await http.post(export_url(project_id), json=body)
        history = (await http.get(export_url(project_id, tail="history"))).json()["jobs"]

    error = assert_error(response, 400, "BAD_REQUEST")
    assert error["field"] == field, error
    assert field.split(".")[-1] in error["error"] or field.endswith("selectedImageIds"), error
    assert history == []  # nothing was queued


async def test_malformed_and_oversized_bodies_are_refused_in_the_error_shape(served):
    _, token = await served.user("ada@example.com")
    project_id, _ = await served.project(token, images=1)
    limit = served.runtime.settings.max_json_body_bytes
    huge = json.dumps({"options": {}, "projectName": "x" * (2 * 1024 * 1024)}).encode()

    async def streamed():
        for start_ in range(0, len(huge), 64 * 1024):
            yield huge[start_:start_ + 64 * 1024]

    async with served.client(token) as http:
        headers = {"Content-Type": "application/json"}
        malformed = await http.post(export_url(project_id), content=b'{"options": {', headers=headers)
        not_json = await http.post(export_url(project_id), content=b"options=all", headers=headers)
        a_list = await http.post(export_url(project_id), json=[{"options": {}}])
        a_string = await http.post(export_url(project_id), json="export please")
        declared = await http.post(export_url(project_id), content=huge, headers=headers)
        chunked = await http.post(export_url(project_id), content=streamed(), headers=headers)
        bad_query = await http.get(export_url(project_id, tail="history"), params={"limit": "many"})
        zero_limit = await http.get(export_url(project_id, tail="history"), params={"limit": 0})
        history = (await http.get(export_url(project_id, tail="history"))).json()["jobs"]

    assert assert_error(malformed, 400, "BAD_REQUEST")["field"] == "body"
    assert assert_error(not_json, 400, "BAD_REQUEST")["field"] == "body"
    assert assert_error(a_list, 400, "BAD_REQUEST")["field"] == "body"
    assert assert_error(a_string, 400, "BAD_REQUEST")["error"].startswith("body: ")
    assert len(huge) > limit
    assert_error(declared, 413, "PAYLOAD_TOO_LARGE")
    assert_error(chunked, 413, "PAYLOAD_TOO_LARGE")
    assert assert_error(bad_query, 400, "BAD_REQUEST")["field"] == "limit"
    assert assert_error(zero_limit, 400, "BAD_REQUEST")["field"] == "limit"
    assert history == []


async def test_uploads_that_are_not_images_and_bad_polygons_are_400(served):
    _, token = await served.user("ada@example.com")
    project_id, image_ids = await served.project(token, images=1)
    segmentation = f"/api/projects/{project_id}/images/{image_ids[0]}/segmentation"
    square = [[0, 0], [10, 0], [10, 10], [0, 10]]
    bad_polygons = {
        "three coordinates": [{"type": "external", "points": [[0, 0, 0], [1, 0, 0], [1, 1, 0]]}],
        "text coordinates": [{"type": "external", "points": [["a", "b"], [1, 0], [1, 1]]}],
        "no points": [{"type": "external", "points": []}],
        "points that are not a list": [{"type": "external", "points": "0,0 1,0 1,1"}],
        "an unknown kind": [{"type": "middle", "points": square}],
        "a hole with an unknown parent": [{"type": "internal", "points": square, "parentId": "nobody"}],
        "duplicate ids": [{"id": "a", "type": "external", "points": square},
                          {"id": "a", "type": "external", "points": square}],
    }
    async with served.client(token) as http:
        text_upload = await http.post(f"/api/projects/{project_id}/images",
                                      files=[("files", ("notes.png", b"this is not a png", "image/png"))])
        no_files = await http.post(f"/api/projects/{project_id}/images", data={"segmentation": "{}"})
        bad_segmentation_json = await http.post(
            f"/api/projects/{project_id}/images", data={"segmentation": "{not json"},
            files=[("files", ("notes.png", b"this is not a png", "image/png"))])
        null_segmentation = await http.post(
            f"/api/projects/{project_id}/images", data={"segmentation": "null"},
            files=[("files", ("notes.png", b"this is not a png", "image/png"))])
        refused = {name: await http.put(segmentation, json={"polygons": polygons})
                   for name, polygons in bad_polygons.items()}
        not_a_number = await http.put(segmentation, content=b'{"polygons": [{"type": "external", "points": '
                                                            b'[[NaN, 0], [1, 0], [1, 1]]}]}',
                                      headers={"Content-Type": "application/json"})
        unknown_image = await http.put(f"/api/projects/{project_id}/images/{NOBODY}/segmentation",
                                       json={"polygons": [{"type": "external", "points": square}]})
        accepted = await http.put(segmentation, json={"polygons": [{"type": "external", "points": square}]})
        project = (await http.get(f"/api/projects/{project_id}")).json()

    assert assert_error(text_upload, 400, "BAD_REQUEST")["field"] == "files"
    assert_error(no_files, 400, "BAD_REQUEST")
    assert assert_error(bad_segmentation_json, 400, "BAD_REQUEST")["field"] == "segmentation"
    null_error = assert_error(null_segmentation, 400, "BAD_REQUEST")
    assert null_error["field"] == "segmentation" and null_error["error"].startswith("segmentation: ")
    for name, response in refused.items():
        assert response.status_code == 400, (name, response.status_code, response.text)
        assert_error(response, 400, "BAD_REQUEST")
    assert_error(not_a_number, 400, "BAD_REQUEST")
    assert_error(unknown_image, 404, "NOT_FOUND")
    assert accepted.status_code == 200 and accepted.json()["polygonCount"] == 1
    assert project["imageCount"] == 1 and project["images"][0]["polygonCount"] == 1


async def test_deleting_a_project_mid_export_cancels_the_export_as_system_cancelled(tmp_path):
    async with running(tmp_path, items=1) as app:
        user_id, token = await app.user("ada@example.com")
        project_id, _ = await app.project(token, images=2)
        sock = await app.socket(token)
        async with app.client(token) as http:
            job_id = (await start(http, project_id))["id"]
            await app.items.reached(job_id)
            deleted = await http.delete(f"/api/projects/{project_id}")
            event, _ = await sock.wait_for(job_id, "export:cancelled")
            app.items.release(job_id)
            await app.settled(job_id)
            gone = await http.get(export_url(project_id, job_id, "status"))
            project = await http.get(f"/api/projects/{project_id}")
        job = await app.stored_job(job_id)
        stored = await app.stored_log(job_id)

    assert deleted.status_code == 204
    assert event["reason"] == "system_cancelled" and event["previousStatus"] == "processing"
    assert event["status"] == "cancelled" and event["cancelledBy"] == user_id
    assert job.status == "cancelled" and job.reason == "system_cancelled" and job.file_path is None
    assert_log_is_sound(stored)
    assert sock.payloads(job_id) == stored
    assert_error(gone, 404, "NOT_FOUND")
    assert_error(project, 404, "NOT_FOUND")
    assert list(app.runtime.settings.exports_dir.rglob("*.zip")) == []


async def test_revoking_a_share_mid_export_cancels_that_users_export_and_hides_the_project(tmp_path):
    async with running(tmp_path, items=1) as app:
        ada_id, ada_token = await app.user("ada@example.com")
        bob_id, bob_token = await app.user("bob@example.com")
        project_id, _ = await app.project(ada_token, images=2)
        ada_socket = await app.socket(ada_token)
        bob_socket = await app.socket(bob_token)
        async with app.client(ada_token) as ada, app.client(bob_token) as bob:
            shared = await ada.post(f"/api/projects/{project_id}/shares", json={"email": "bob@example.com"})
            assert shared.status_code == 201, shared.text
            job_id = (await start(bob, project_id))["id"]
            await app.items.reached(job_id)
            revoked = await ada.delete(f"/api/projects/{project_id}/shares/{bob_id}")
            bob_event, _ = await bob_socket.wait_for(job_id, "export:cancelled")
            ada_event, _ = await ada_socket.wait_for(job_id, "export:cancelled")
            app.items.release(job_id)
            await app.settled(job_id)
            project = await bob.get(f"/api/projects/{project_id}")
            job_status = await bob.get(export_url(project_id, job_id, "status"))
            restart = await bob.post(export_url(project_id), json={})
            owner_project = await ada.get(f"/api/projects/{project_id}")
        stored = await app.stored_log(job_id)

    assert revoked.status_code == 204
    assert bob_event == ada_event  # the canceller hears of it too
    assert bob_event["reason"] == "system_cancelled" and bob_event["cancelledBy"] == ada_id
    assert bob_event["userId"] == bob_id and bob_event["previousStatus"] == "processing"
    assert_log_is_sound(stored)
    assert stored[-1]["type"] == "export:cancelled"
    assert_error(project, 404, "NOT_FOUND")
    assert_error(job_status, 404, "NOT_FOUND")
    assert_error(restart, 404, "NOT_FOUND")
    assert owner_project.status_code == 200


async def test_the_event_schema_formats_and_api_documents_are_published(served):
    async with served.client() as http:
        schema = await http.get("/api/export/events/schema")
        formats = await http.get("/api/export/formats")
        defaults = await http.get("/api/export/defaults")
        docs = await http.get("/docs")
        openapi = await http.get("/openapi.json")

    assert schema.status_code == 200
    events = schema.json()["events"]
    assert set(events) == {"export:queued", "export:started", "export:progress", "export:completed",
                           "export:failed", "export:cancelled"}
    for name, event_schema in events.items():
        assert {"jobId", "projectId", "userId", "seq", "status", "timestamp"} <= set(event_schema["properties"]), name
    assert events["export:cancelled"]["properties"].keys() >= {"cancelledAt", "reason", "previousStatus"}
    assert formats.status_code == 200
    assert {entry["name"] for entry in formats.json()["annotations"]} >= {"coco", "json", "masks", "geojson"}
    assert defaults.status_code == 200
    assert defaults.json()["options"] == ExportOptions().to_json()  # what an export that names no options gets
    assert defaults.json()["controls"]["fontSize"] == {"min": 10, "max": 50, "step": 2}
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert openapi.status_code == 200
    paths = openapi.json()["paths"]
    assert "/api/projects/{project_id}/export" in paths
    assert "/api/projects/{project_id}/export/{job_id}/cancel" in paths


async def test_health_readiness_and_metrics_respond(tmp_path):
    async with running(tmp_path) as app:
        *_, stored = await app.completed_export()
        async with app.client() as http:
            health = await http.get("/api/healthz")
            ready = await http.get("/api/readyz")
            metrics = await http.get("/api/metrics")

    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert 'exportd_events_total{type="export:completed"} 1.0' in metrics.text
    assert f'exportd_events_total{{type="export:queued"}} {float(sum(e["type"] == "export:queued" for e in stored))}' \
        in metrics.text
