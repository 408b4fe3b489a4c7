"""Every route of the app × every kind of caller: the status the contract promises (DESIGN §3).

The routes are read from the app itself, so a route added without a row here
fails this test. A caller who may not see a project or job gets 404, never 403;
403 is only for a project the caller sees but may not change (a member of a
shared project). Anonymous, forged and expired credentials, and a download token
used where an access token belongs, are 401.

Every non-owner call runs first and must change nothing; the owner's calls run
last, destructive ones on objects of their own.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi.routing import APIRoute, iter_route_contexts

from exportd.synthetic import synthetic_project
from tests.acceptance.support import access_token, assert_error, export_url, running, start, status, until_status

ACTORS = ("owner", "member", "stranger", "anonymous", "forged", "expired", "download_token")
UNAUTHENTICATED = {"anonymous": 401, "forged": 401, "expired": 401, "download_token": 401}


def public(ok: int = 200) -> dict[str, int]:
    """No credentials needed: every caller gets `ok`."""
    return dict.fromkeys(ACTORS, ok)


def signed_in(ok: int) -> dict[str, int]:
    """Any account."""
    return {"owner": ok, "member": ok, "stranger": ok, **UNAUTHENTICATED}


def project_reader(ok: int, member: int | None = None) -> dict[str, int]:
    """Anyone who sees the project: its owner and its members."""
    return {"owner": ok, "member": ok if member is None else member, "stranger": 404, **UNAUTHENTICATED}


def project_owner(ok: int) -> dict[str, int]:
    """Only the owner changes the project; a member sees it (403), a stranger does not (404)."""
    return {"owner": ok, "member": 403, "stranger": 404, **UNAUTHENTICATED}


def job_owner(ok: int) -> dict[str, int]:
    """A job is visible to the user who started it only."""
    return {"owner": ok, "member": 404, "stranger": 404, **UNAUTHENTICATED}


@dataclass
class World:
    owner_id: str
    tokens: dict[str, str | None]  #: the bearer each actor sends (None: no credentials)
    project: str  #: owned, shared with the member, one image, a completed export
    image: str
    job: str  #: the owner's completed export in `project`
    spare_job: str  #: another completed export of the owner's, to discard
    doomed_project: str  #: shared with the member; the owner deletes it
    shared_project: str  #: shared with the member and the guest; the owner revokes the guest
    guest_id: str
    guest_email: str
    download_token: str  #: a download token of `spare_job`


_, PNG, POLYGONS = next(synthetic_project(count=1, seed=11))


def upload(world: World, actor: str) -> dict[str, Any]:
    png, polygons = PNG, POLYGONS
    return {"files": [("files", (f"{actor}.png", png, "image/png"))],
            "data": {"segmentation": json.dumps({f"{actor}.png": polygons})}}


def polygons(world: World, actor: str) -> dict[str, Any]:
    return {"json": {"polygons": [{"type": "external", "points": [[1, 1], [30, 1], [30, 30], [1, 30]]}]}}


def empty(world: World, actor: str) -> dict[str, Any]:
    return {"json": {}}


def nothing(world: World, actor: str) -> dict[str, Any]:
    return {}


@dataclass
class Row:
    expected: dict[str, int]
    request: Callable[[World, str], dict[str, Any]] = nothing
    params: Callable[[World], dict[str, str]] | None = None  #: path parameters, when not the defaults

    def path(self, template: str, world: World) -> str:
        values = {"project_id": world.project, "job_id": world.job, "image_id": world.image,
                  "user_id": world.guest_id, **(self.params(world) if self.params else {})}
        return template.format(**values)


_counter = itertools.count()

MATRIX: dict[tuple[str, str], Row] = {
    ("POST", "/api/auth/register"): Row(public(201), lambda w, actor: {"json": {
        "email": f"{actor}{next(_counter)}@register.example", "password": "correct horse"}}),
    ("POST", "/api/auth/login"): Row(public(200), lambda w, actor: {"json": {
        "email": "owner@example.com", "password": "correct horse"}}),
    ("POST", "/api/auth/logout"): Row(public(200)),
    ("GET", "/api/auth/me"): Row(signed_in(200)),
    ("GET", "/api/auth/session"): Row(public(200)),  # `user: null` unless the credentials are good
    ("POST", "/api/projects"): Row(signed_in(201), lambda w, actor: {"json": {"name": f"{actor}'s"}}),
    ("GET", "/api/projects"): Row(signed_in(200)),
    ("GET", "/api/projects/{project_id}"): Row(project_reader(200)),
    ("DELETE", "/api/projects/{project_id}"): Row(project_owner(204),
                                                  params=lambda w: {"project_id": w.doomed_project}),
    ("POST", "/api/projects/{project_id}/images"): Row(project_owner(201), upload),
    ("PUT", "/api/projects/{project_id}/images/{image_id}/segmentation"): Row(project_owner(200), polygons),
    ("GET", "/api/projects/{project_id}/images/{image_id}/thumbnail"): Row(project_reader(200)),
    ("GET", "/api/projects/{project_id}/shares"): Row(project_reader(200)),
    ("POST", "/api/projects/{project_id}/shares"): Row(project_owner(201),
                                                       lambda w, actor: {"json": {"email": w.guest_email}}),
    ("DELETE", "/api/projects/{project_id}/shares/{user_id}"): Row(
        project_owner(204), params=lambda w: {"project_id": w.shared_project}),
    ("POST", "/api/projects/{project_id}/export"): Row(project_reader(202), empty),  # members may export
    ("GET", "/api/projects/{project_id}/export/history"): Row(project_reader(200)),  # each sees their own
    ("GET", "/api/projects/{project_id}/export/{job_id}/status"): Row(job_owner(200)),
    ("GET", "/api/projects/{project_id}/export/{job_id}/events"): Row(job_owner(200)),
    ("POST", "/api/projects/{project_id}/export/{job_id}/cancel"): Row(job_owner(409)),  # it completed
    ("POST", "/api/projects/{project_id}/export/{job_id}/download-token"): Row(job_owner(200)),
    ("GET", "/api/projects/{project_id}/export/{job_id}/download"): Row(job_owner(200)),
    ("DELETE", "/api/projects/{project_id}/export/{job_id}"): Row(job_owner(204),
                                                                  params=lambda w: {"job_id": w.spare_job}),
    ("GET", "/api/export/formats"): Row(public()),
    ("GET", "/api/export/defaults"): Row(public()),
    ("GET", "/api/export/events/schema"): Row(public()),
    ("GET", "/api/healthz"): Row(public()),
    ("GET", "/api/readyz"): Row(public()),
    ("GET", "/api/metrics"): Row(public()),
}


def app_routes(app) -> set[tuple[str, str]]:
    """Every (method, path) the app answers under /api, read from its router."""
    found = set()
    for context in iter_route_contexts(app.served.app.fastapi.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and context.path.startswith("/api/"):
            found |= {(method, context.path) for method in route.methods if method != "HEAD"}
    return found


async def build_world(app) -> World:
    owner_id, owner = await app.user("owner@example.com")
    member_id, member = await app.user("member@example.com")
    _, stranger = await app.user("stranger@example.com")
    guest_id, _ = await app.user("guest@example.com")
    await app.user("guest2@example.com")  # the owner shares with this account during the run
    project, images = await app.project(owner, images=1)
    doomed, _ = await app.project(owner, images=0, name="Doomed")
    shared, _ = await app.project(owner, images=0, name="Shared")
    async with app.client(owner) as http:
        for project_id, email in ((project, "member"), (doomed, "member"), (shared, "member"), (shared, "guest")):
            response = await http.post(f"/api/projects/{project_id}/shares", json={"email": f"{email}@example.com"})
            assert response.status_code == 201, response.text
        jobs = []
        for _ in range(2):  # one active export at a time
            job_id = (await start(http, project))["id"]
            await until_status(http, project, job_id, "completed")
            await app.settled(job_id)
            jobs.append(job_id)
        token = (await http.post(export_url(project, jobs[1], "download-token"))).json()["token"]
    return World(
        owner_id=owner_id,
        tokens={"owner": owner, "member": member, "stranger": stranger, "anonymous": None,
                "forged": access_token(owner_id, secret="another-secret-with-enough-entropy-0123456789"),
                "expired": access_token(owner_id, expires_in=-60), "download_token": token},
        project=project, image=images[0], job=jobs[0], spare_job=jobs[1], doomed_project=doomed,
        shared_project=shared, guest_id=guest_id, guest_email="guest2@example.com", download_token=token)


async def call(http, world: World, actor: str, method: str, template: str, row: Row):
    """One request as `actor`; `http` sends no credentials of its own and keeps no cookie between calls."""
    path = row.path(template, world)
    kwargs = row.request(world, actor)
    token = world.tokens[actor]
    if actor == "download_token" and template.endswith("/download"):
        kwargs["params"] = {"token": token}  # the route that takes one: another job's, as the contract's ?token=
    elif token is not None:
        kwargs["headers"] = {"Authorization": f"Bearer {token}"}
    try:
        return path, await http.request(method, path, **kwargs)
    finally:
        http.cookies.clear()  # a login's cookie must not make the next caller someone else


async def test_every_route_answers_each_kind_of_caller_as_the_contract_says(tmp_path):
    async with running(tmp_path) as app:
        routes = app_routes(app)
        missing = sorted(routes - MATRIX.keys())
        assert not missing, f"routes without a row in the authorization matrix: {missing}"
        assert not sorted(MATRIX.keys() - routes), f"rows for routes that no longer exist: {MATRIX.keys() - routes}"

        world = await build_world(app)
        async with app.client(world.tokens["owner"]) as owner:
            job_before = await status(owner, world.project, world.job)
            project_before = (await owner.get(f"/api/projects/{world.project}")).json()

        outcomes: list[tuple[str, str, str, int, Any]] = []
        async with app.client() as http:
            for actor in (*ACTORS[1:], "owner"):  # the owner last: its calls change things
                for (method, template), row in MATRIX.items():
                    path, response = await call(http, world, actor, method, template, row)
                    outcomes.append((actor, method, path, row.expected[actor], response))
                if actor == ACTORS[-1]:
                    async with app.client(world.tokens["owner"]) as owner:
                        job_after = await status(owner, world.project, world.job)
                        project_after = (await owner.get(f"/api/projects/{world.project}")).json()
                        doomed = await owner.get(f"/api/projects/{world.doomed_project}")
                        shares = (await owner.get(f"/api/projects/{world.shared_project}/shares")).json()["shares"]

    wrong = [(actor, method, path, expected, response.status_code, response.text[:200])
             for actor, method, path, expected, response in outcomes if response.status_code != expected]
    assert not wrong, "\n".join(map(str, wrong))
    for actor, method, path, expected, response in outcomes:
        if expected >= 400:
            code = {401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND", 409: "CONFLICT"}[expected]
            assert_error(response, expected, code)
    sessions = {actor: response.json()["user"] for actor, _, path, _, response in outcomes
                if path == "/api/auth/session"}
    assert {actor for actor, user in sessions.items() if user is not None} == {"owner", "member", "stranger"}
    assert sessions["owner"]["id"] == world.owner_id
    # nobody but the owner changed anything of the owner's
    assert job_after == job_before
    member_images = [image for image in project_after["images"] if image["name"] != "owner.png"]
    assert member_images == project_before["images"]
    assert doomed.status_code == 200
    assert {share["email"] for share in shares} == {"member@example.com", "guest@example.com"}
