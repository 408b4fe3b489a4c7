"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from exportd.domain.errors import ExportdError, ServiceUnavailable
from exportd.views import error_view

log = logging.getLogger(__name__)

router = APIRouter(tags=["system"])


@router.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Ready when the store answers and takes a write, and the storage and export folders take a file."""
    runtime = request.app.state.runtime
    checks: dict[str, str] = {}
    for name, probe in (("store", runtime.store.probe_write),
                        ("storage", lambda: asyncio.to_thread(runtime.services.write_probe.check))):
        try:
            await probe()
            checks[name] = "ok"
        except ExportdError as error:
            checks[name] = error.message
        except Exception:  # readiness reports, it does not raise; the details go to the log
            log.exception("readiness check %s failed", name)
            checks[name] = "failed"
    cluster: dict[str, bool] = {}
    if runtime.listener is not None:  # scaled out: this node relays other processes' events only while it listens
        cluster = {"listening": runtime.listener.connected.is_set(), "leader": runtime.duties.leader}
        checks["listener"] = "ok" if cluster["listening"] else "not listening to the store"
    if all(state == "ok" for state in checks.values()):
        return JSONResponse({"status": "ready", "engine": runtime.engine_name, "checks": checks, **cluster})
    error = ServiceUnavailable("exportd cannot take writes now: " +
                               "; ".join(f"{name}: {state}" for name, state in checks.items() if state != "ok"))
    return JSONResponse({**error_view(error), "status": "unavailable", "checks": checks, **cluster}, status_code=503,
                        headers={"Retry-After": str(error.retry_after)})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
