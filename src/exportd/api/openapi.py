"""The OpenAPI document and ``/docs``: what every operation answers, described as it is served.

FastAPI describes each operation's parameters and body; this module adds what
it cannot see: validation errors are 400 in the error shape (not FastAPI's 422),
the error statuses each route can answer, the success shapes (``schemas.py``),
and the two ways to authenticate. ``/docs`` is Swagger UI from the
``swagger-ui-bundle`` package, served by exportd itself, so it works offline.

Error statuses come from rules and from the table ``OPERATIONS``:

* 400 where the operation takes parameters or a body; 413 where it takes a body;
* 401 where it needs credentials; 404 where its path names something;
* 503 wherever it touches the store or the disk;
* what the table adds: 403 (a member changing what only the owner may), 409, 410, 429.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from swagger_ui_bundle import swagger_ui_path

from exportd.api import schemas
from exportd.api.deps import COOKIE, get_current_user, get_current_user_id

ASSETS = "/docs/assets"
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
               "description": "The access token from `POST /api/auth/login`"},
    "cookie": {"type": "apiKey", "in": "cookie", "name": COOKIE,
               "description": "The httpOnly cookie `POST /api/auth/login` sets"},
}
AUTHENTICATED = [{"bearer": []}, {"cookie": []}]
ERRORS = {
    400: "Invalid input (validation errors too), naming the field in `field`",
    401: "No credentials, or forged, expired or of the wrong kind",
    403: "Visible to the caller, but only its owner may do this",
    404: "Absent, or not visible to the caller (never 403 for what the caller may not see)",
    409: "The resource is in a state that does not allow this",
    410: "It existed and is no longer available",
    413: "The request body is over the limit",
    429: "The active-export limit is reached; retry after `Retry-After` seconds",
    503: "Storage or database full, read-only or unreachable; retry after `Retry-After` seconds",
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}}


@dataclass(frozen=True)
class Operation:
    """What the rules cannot tell about one operation."""

    answer: type[BaseModel] | None = None  #: the success body (None: not JSON, or nothing)
    errors: tuple[int, ...] = ()  #: statuses beyond the rules
    authenticated: bool | None = None  #: None: read from the route's dependencies
    touches_store: bool = True
    media_type: str | None = None  #: a success body that is not JSON
    extra_responses: dict[int, type[BaseModel]] = field(default_factory=dict)


S = schemas
OPERATIONS: dict[tuple[str, str], Operation] = {
    ("POST", "/api/auth/register"): Operation(S.UserAnswer, (409,)),
    ("POST", "/api/auth/login"): Operation(S.LoginAnswer, (401,)),
    ("POST", "/api/auth/logout"): Operation(S.Success, touches_store=False),
    ("GET", "/api/auth/me"): Operation(S.UserAnswer),
    ("GET", "/api/auth/session"): Operation(S.SessionAnswer, authenticated=False),
    ("POST", "/api/projects"): Operation(S.Project),
    ("GET", "/api/projects"): Operation(S.ProjectList),
    ("GET", "/api/projects/{project_id}"): Operation(S.ProjectDetail),
    ("DELETE", "/api/projects/{project_id}"): Operation(None, (403,)),
    ("POST", "/api/projects/{project_id}/images"): Operation(S.UploadAnswer, (403,)),
    ("GET", "/api/projects/{project_id}/images/{image_id}/thumbnail"): Operation(None),
    ("PUT", "/api/projects/{project_id}/images/{image_id}/segmentation"): Operation(S.SegmentationAnswer, (403,)),
    ("GET", "/api/projects/{project_id}/shares"): Operation(S.ShareList),
    ("POST", "/api/projects/{project_id}/shares"): Operation(S.UserAnswer, (403,)),
    ("DELETE", "/api/projects/{project_id}/shares/{user_id}"): Operation(None, (403,)),
    ("POST", "/api/projects/{project_id}/export"): Operation(S.StartAnswer, (409, 429)),
    ("GET", "/api/projects/{project_id}/export/history"): Operation(S.JobList),
    ("GET", "/api/projects/{project_id}/export/{job_id}/status"): Operation(S.Job),
    ("GET", "/api/projects/{project_id}/export/{job_id}/events"): Operation(S.EventLog),
    ("POST", "/api/projects/{project_id}/export/{job_id}/cancel"): Operation(S.CancelAnswer, (409,)),
    ("POST", "/api/projects/{project_id}/export/{job_id}/download-token"): Operation(S.DownloadToken, (409, 410)),
    ("GET", "/api/projects/{project_id}/export/{job_id}/download"): Operation(None, (409, 410), authenticated=True),
    ("DELETE", "/api/projects/{project_id}/export/{job_id}"): Operation(None, (409,)),
    ("GET", "/api/export/formats"): Operation(S.Formats, touches_store=False),
    ("GET", "/api/export/defaults"): Operation(S.Defaults, touches_store=False),
    ("GET", "/api/export/events/schema"): Operation(S.EventSchema, touches_store=False),
    ("GET", "/api/healthz"): Operation(S.Health, touches_store=False),
    ("GET", "/api/readyz"): Operation(S.Ready, extra_responses={503: S.NotReady}),
    ("GET", "/api/metrics"): Operation(None, touches_store=False, media_type="text/plain"),
}


def install(app: FastAPI) -> None:
    """Describe the API in `app.openapi()` and serve Swagger UI at ``/docs`` from the package."""
    app.openapi = lambda: _document(app)
    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{app.title} API",
                                   swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{ASSETS}/favicon-32x32.png")


def _document(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = document.setdefault("components", {})
    components["securitySchemes"] = SECURITY_SCHEMES
    found = _models({op.answer for op in OPERATIONS.values() if op.answer} | {schemas.ErrorBody, schemas.NotReady})
    component_schemas = components.setdefault("schemas", {})
    component_schemas.update(found)
    for name in ("HTTPValidationError", "ValidationError"):
        component_schemas.pop(name, None)
    routes = _routes(app)
    for path, methods in document.get("paths", {}).items():
        for method, operation in methods.items():
            route = routes.get((method.upper(), path))
            _describe(operation, OPERATIONS.get((method.upper(), path), Operation()), route)
    app.openapi_schema = document
    return document


def _describe(operation: dict[str, Any], known: Operation, route: APIRoute | None) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    validated = responses.pop("422", None) is not None
    success = next((status for status in responses if status.startswith("2")), None)
    if known.answer is not None and success is not None:
        responses[success]["content"] = {"application/json": {"schema": _ref(known.answer)}}
    elif known.media_type is not None and success is not None:
        responses[success]["content"] = {known.media_type: {"schema": {"type": "string"}}}
    elif success == "204":
        responses[success].pop("content", None)

    has_body = "requestBody" in operation
    authenticated = known.authenticated if known.authenticated is not None else _needs_credentials(route)
    statuses = set(known.errors)
    statuses |= {400} if validated or has_body or operation.get("parameters") else set()
    statuses |= {413} if has_body else set()
    statuses |= {401} if authenticated else set()
    statuses |= {404} if any(p.get("in") == "path" for p in operation.get("parameters", [])) else set()
    statuses |= {503} if known.touches_store else set()
    for status in sorted(statuses):
        model = known.extra_responses.get(status, schemas.ErrorBody)
        response: dict[str, Any] = {"description": ERRORS[status],
                                    "content": {"application/json": {"schema": _ref(model)}}}
        if status in (429, 503):
            response["headers"] = RETRY_AFTER
        if status == 401:
            response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        responses[str(status)] = response
    if authenticated:
        operation["security"] = AUTHENTICATED


def _needs_credentials(route: APIRoute | None) -> bool:
    if route is None:
        return False
    stack, calls = [route.dependant], set()
    while stack:
        dependant = stack.pop()
        calls.add(dependant.call)
        stack.extend(dependant.dependencies)
    return bool(calls & {get_current_user, get_current_user_id})


def _routes(app: FastAPI) -> dict[tuple[str, str], APIRoute]:
    found: dict[tuple[str, str], APIRoute] = {}
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and context.path:
            for method in route.methods:
                found[(method, context.path)] = route
    return found


def _models(models: set[type[BaseModel]]) -> dict[str, Any]:
    _, top = models_json_schema([(model, "serialization") for model in sorted(models, key=lambda m: m.__name__)],
                                ref_template="#/components/schemas/{model}")
    return top.get("$defs", {})


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}
