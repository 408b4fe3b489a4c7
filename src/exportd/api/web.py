"""The browser UI: the bundle built from ``web/`` into ``exportd/web_dist``, served at ``/``.

The bundle is built by the project's setup step (``make install`` runs
``npm ci`` and ``npm run build`` in ``web/``). Without it, ``/`` says how to build
it and still links the API documentation.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

BUNDLE = Path(__file__).resolve().parent.parent / "web_dist"

_NOT_BUILT = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>exportd</title></head>
<body><h1>exportd</h1><p>The export service is running, but the browser UI is not built:
run <code>make install</code> (or <code>npm ci --prefix web &amp;&amp; npm run build --prefix web</code>)
and restart.</p>
<ul><li><a href="/docs">HTTP API (OpenAPI)</a></li><li><a href="/api/export/events/schema">Event schema</a></li>
<li><a href="/api/export/formats">Formats</a></li></ul></body></html>"""


class _Bundle(StaticFiles):
    """Static files whose HTML is never cached, so a rebuilt bundle is picked up on reload.

    Paths under ``/api/`` are never files: an unknown API route stays a 404 in the error shape.
    """

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            raise HTTPException(status_code=404)
        await super().__call__(scope, receive, send)

    def file_response(self, full_path, stat_result, scope, status_code=200):
        response = super().file_response(full_path, stat_result, scope, status_code)
        if str(full_path).endswith(".html"):
            response.headers["Cache-Control"] = "no-cache"
        return response


def mount_ui(app: FastAPI, bundle: Path = BUNDLE) -> None:
    """Serve `bundle` at ``/`` (after every other route), or a page that says it is missing."""
    if (bundle / "index.html").is_file():
        app.mount("/", _Bundle(directory=bundle, html=True), name="ui")
        return

    @app.get("/", include_in_schema=False)
    async def not_built() -> HTMLResponse:
        return HTMLResponse(_NOT_BUILT)
