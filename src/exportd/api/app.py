"""create_app: the FastAPI app and the Socket.IO server in one ASGI app, built from settings."""

from __future__ import annotations

from contextlib import asynccontextmanager

import socketio
from fastapi import APIRouter, FastAPI

from exportd import __version__
from exportd.api import errors, openapi
from exportd.api.limits import BodyLimit
from exportd.api.routes import auth, exports, projects, system, testing
from exportd.api.web import mount_ui
from exportd.config import Settings
from exportd.engine.hooks import EngineHooks
from exportd.holds import Holds, RedisHolds
from exportd.runtime import Runtime


def create_fastapi(runtime: Runtime, holds: Holds | RedisHolds | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await runtime.start()
        try:
            yield
        finally:
            if isinstance(holds, Holds):
                holds.release_all()  # no pipeline thread may outlive the server waiting on a hold
            await runtime.stop()

    app = FastAPI(title="exportd", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Segmentation exports as background jobs with ordered, typed events.")
    app.state.runtime = runtime
    errors.install(app)
    api = APIRouter(prefix="/api")
    for module in (auth, projects, exports, system):
        api.include_router(module.router)
    if holds is not None:
        app.state.holds = holds
        api.include_router(testing.router)
    app.include_router(api)
    openapi.install(app)
    mount_ui(app)  # last: it answers every path the API does not
    return app


def create_app(settings: Settings, *, hooks: EngineHooks | None = None, client_manager=None) -> socketio.ASGIApp:
    """The whole service as one ASGI app. Nothing connects until the lifespan starts.

    With ``settings.test_holds`` (and no `hooks` given), jobs can be held from
    another process through ``/api/testing/holds`` (see ``exportd.holds``).
    """
    holds: Holds | RedisHolds | None = None
    if settings.test_holds and hooks is None:
        # scaled out, the jobs run in worker processes, which read the holds from Redis
        holds = RedisHolds(settings.broker_url) if settings.broker_url else Holds()
        hooks = holds.engine_hooks()
    runtime = Runtime(settings, hooks=hooks, client_manager=client_manager)
    fastapi_app = create_fastapi(runtime, holds)
    limited = BodyLimit(fastapi_app, json_limit=runtime.settings.max_json_body_bytes,
                        upload_limit=runtime.settings.max_upload_bytes)
    asgi = socketio.ASGIApp(runtime.sio, other_asgi_app=limited, socketio_path="socket.io")
    asgi.runtime = runtime
    asgi.fastapi = fastapi_app
    return asgi
