"""create_app: the FastAPI app and the Socket.IO server in one ASGI app, built from settings."""

from __future__ import annotations

from contextlib import asynccontextmanager

import socketio
from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse

from exportd import __version__
from exportd.api import errors
from exportd.api.limits import BodyLimit
from exportd.api.routes import auth, exports, projects, system
from exportd.config import Settings
from exportd.engine.hooks import EngineHooks
from exportd.runtime import Runtime

_LANDING = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>exportd</title></head>
<body><h1>exportd</h1><p>The export service is running.</p>
<ul><li><a href="/docs">HTTP API (OpenAPI)</a></li><li><a href="/api/export/events/schema">Event schema</a></li>
<li><a href="/api/export/formats">Formats</a></li></ul></body></html>"""


def create_fastapi(runtime: Runtime) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title="exportd", version=__version__, lifespan=lifespan,
                  description="Segmentation exports as background jobs with ordered, typed events.")
    app.state.runtime = runtime
    errors.install(app)
    api = APIRouter(prefix="/api")
    for module in (auth, projects, exports, system):
        api.include_router(module.router)
    app.include_router(api)

    @app.get("/", include_in_schema=False)
    async def landing() -> HTMLResponse:
        return HTMLResponse(_LANDING)

    return app


def create_app(settings: Settings, *, hooks: EngineHooks | None = None, client_manager=None) -> socketio.ASGIApp:
    """The whole service as one ASGI app. Nothing connects until the lifespan starts."""
    runtime = Runtime(settings, hooks=hooks, client_manager=client_manager)
    fastapi_app = create_fastapi(runtime)
    limited = BodyLimit(fastapi_app, json_limit=runtime.settings.max_json_body_bytes,
                        upload_limit=runtime.settings.max_upload_bytes)
    asgi = socketio.ASGIApp(runtime.sio, other_asgi_app=limited, socketio_path="socket.io")
    asgi.runtime = runtime
    asgi.fastapi = fastapi_app
    return asgi
