"""The OpenAPI document describes what is served, and /docs works without the internet (DESIGN §3).

schemathesis generates requests from the document, valid and invalid, and
checks each answer against it: no server error, every status documented, every
body in its documented shape and content type, invalid input refused, declared
authentication enforced. The server runs for real on a loopback port, with a
user, a shared project and a completed export, so generated ids often name
real things (see `known_ids`).
"""

from __future__ import annotations

import re
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi import checks as openapi_checks

from exportd.api.app import create_app
from exportd.synthetic import synthetic_project
from exportd.testing import test_settings
from tests.acceptance.support import running


@dataclass
class Served:
    url: str
    token: str
    ids: dict[str, str]  #: real ids by path parameter name


def _start(data_dir: Path) -> tuple[uvicorn.Server, threading.Thread, str]:
    app = create_app(test_settings(data_dir))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", lifespan="on"))
    thread = threading.Thread(target=server.run, name="exportd-under-schemathesis", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    return server, thread, f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"


def _seed(url: str) -> Served:
    with httpx.Client(base_url=url, timeout=30) as http:
        for email in ("ada@example.com", "bob@example.com"):
            assert http.post("/api/auth/register", json={"email": email, "password": "correct horse"}).is_success
        bob = http.post("/api/auth/login", json={"email": "bob@example.com", "password": "correct horse"}).json()
        http.cookies.clear()
        token = http.post("/api/auth/login", json={"email": "ada@example.com", "password": "correct horse"}).json()
        http.cookies.clear()
        http.headers["Authorization"] = f"Bearer {token['token']}"
        project = http.post("/api/projects", json={"name": "Spheroids"}).json()["id"]
        name, png, polygons = next(synthetic_project(count=1, seed=3))
        import json
        images = http.post(f"/api/projects/{project}/images", files=[("files", (name, png, "image/png"))],
                           data={"segmentation": json.dumps({name: polygons})}).json()["images"]
        assert http.post(f"/api/projects/{project}/shares", json={"email": "bob@example.com"}).is_success
        job = http.post(f"/api/projects/{project}/export", json={}).json()["id"]
        deadline = time.monotonic() + 30
        while http.get(f"/api/projects/{project}/export/{job}/status").json()["status"] != "completed":
            assert time.monotonic() < deadline, "the seed export did not complete"
            time.sleep(0.05)
    return Served(url, token["token"], {"project_id": project, "job_id": job, "image_id": images[0]["id"],
                                        "user_id": bob["user"]["id"]})


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with tempfile.TemporaryDirectory() as folder:
        server, thread, url = _start(Path(folder) / "data")
        try:
            yield _seed(url)
        finally:
            server.should_exit = True
            thread.join(timeout=30)


#: every check of a single call except "valid data is accepted": the server also refuses what a schema
#: cannot state (an export with nothing in it, image ids of another project, a hole without its cell)
CHECKS = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.negative_data_rejection,
    openapi_checks.ignored_auth,
    openapi_checks.missing_required_header,
    openapi_checks.unsupported_method,
]


def known_ids(case, served: Served) -> None:
    """Two of three generated ids become real ones (a pure function of the id, so examples replay),
    except that the seeded project is never deleted, so later operations still find it."""
    for name, value in list((case.path_parameters or {}).items()):
        if name in served.ids and zlib.crc32(str(value).encode()) % 3 and not (
                case.method == "DELETE" and case.path == "/api/projects/{project_id}"):
            case.path_parameters[name] = served.ids[name]


def check(case, served: Served) -> None:
    known_ids(case, served)
    case.call_and_validate(base_url=served.url, headers={"Authorization": f"Bearer {served.token}"},
                           checks=CHECKS, timeout=30)


def conformance(served: Served, examples: int, *, derandomize: bool) -> dict[str, str]:
    """Run every operation of the served document for `examples` cases; the failures by operation."""
    api = schemathesis.openapi.from_url(f"{served.url}/openapi.json")
    failures: dict[str, str] = {}
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 25, [operation.label for operation in operations]
    for operation in operations:
        @settings(max_examples=examples, deadline=None, derandomize=derandomize, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def run(case):
            check(case, served)

        try:
            run()
        except BaseException as error:  # schemathesis groups what it found for one operation
            if isinstance(error, (KeyboardInterrupt, SystemExit)):
                raise
            failures[operation.label] = str(error)[:3000]
    return failures


def test_the_server_answers_as_its_openapi_document_says(served):
    failures = conformance(served, examples=12, derandomize=True)
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())


@pytest.mark.stress
def test_the_server_answers_as_its_openapi_document_says_over_many_examples(served):
    failures = conformance(served, examples=400, derandomize=False)
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())


async def test_docs_work_offline_from_assets_served_by_exportd(tmp_path):
    async with running(tmp_path) as app, app.client() as http:
        page = await http.get("/docs")
        hosts = set(re.findall(r"""(?:src|href)=["']?(?:https?:)?//([^/"'\s>]+)""", page.text))
        assets = re.findall(r"""(?:src|href)=["']?(/docs/assets/[^"'\s>]+)""", page.text)
        fetched = {path: await http.get(path) for path in assets}
        document = (await http.get("/openapi.json")).json()
        redoc = await http.get("/redoc")

    assert page.status_code == 200 and "SwaggerUIBundle" in page.text
    assert hosts == set(), f"/docs loads from {hosts}"
    assert {path.rsplit("/", 1)[1] for path in assets} >= {"swagger-ui-bundle.js", "swagger-ui.css"}
    for path, response in fetched.items():
        assert response.status_code == 200 and len(response.content) > 500, path
    assert "/openapi.json" in page.text and document["openapi"].startswith("3.")
    assert redoc.status_code == 404  # ReDoc would load from a CDN, so it is not offered


def test_the_document_says_400_for_validation_and_names_the_error_shape_and_security_everywhere():
    with tempfile.TemporaryDirectory() as folder:
        document = create_app(test_settings(Path(folder) / "data")).fastapi.openapi()
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["cookie"] == {**schemes["cookie"], "type": "apiKey", "in": "cookie", "name": "access_token"}
    untyped, unsecured = [], []
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            label = f"{method.upper()} {path}"
            responses = operation["responses"]
            assert "422" not in responses, label
            if operation.get("parameters") or "requestBody" in operation:
                assert "400" in responses, label
            if "requestBody" in operation:
                assert "413" in responses, label
            for status, response in responses.items():
                if status[0] in "45":
                    schema = response["content"]["application/json"]["schema"]["$ref"]
                    assert schema.endswith(("/ErrorBody", "/NotReady")), (label, status)
            for status in ("429", "503"):
                if status in responses:
                    assert "Retry-After" in responses[status]["headers"], (label, status)
            success = next(response for status, response in responses.items() if status[0] == "2")
            for media_type, content in success.get("content", {}).items():
                if media_type == "application/json" and "$ref" not in content["schema"]:
                    untyped.append(label)
            if "401" in responses and operation.get("security") != [{"bearer": []}, {"cookie": []}]:
                unsecured.append(label)
    assert not untyped, f"operations whose answer has no typed schema: {untyped}"
    assert unsecured == ["POST /api/auth/login"], f"401 without a security scheme: {unsecured}"  # a wrong password
    codes = set(document["components"]["schemas"]["ErrorBody"]["properties"]["code"]["enum"])
    assert {"BAD_REQUEST", "UNAUTHORIZED", "NOT_FOUND", "PAYLOAD_TOO_LARGE", "SERVICE_UNAVAILABLE"} <= codes
