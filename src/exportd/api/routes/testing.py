"""Routes a test in another process uses to hold jobs (mounted only when ``EXPORTD_TEST_HOLDS`` is set).

    POST /api/testing/holds                      {"point": "item", "afterItems": 3} arms a hold
    GET  /api/testing/holds/{jobId}/{point}      {"state": "waiting" | "held" | "released"}
    POST /api/testing/holds/{jobId}/{point}/release
    POST /api/testing/holds/release-all          disarms every point and lets every job go
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from exportd.holds import Holds, Point

router = APIRouter(prefix="/testing/holds", tags=["testing"], include_in_schema=False)


class ArmRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    point: Point
    afterItems: int = Field(1, ge=1)


def _holds(request: Request) -> Holds:
    return request.app.state.holds


@router.post("")
async def arm(body: ArmRequest, request: Request) -> dict:
    _holds(request).arm(body.point, body.afterItems)
    return {"armed": body.point}


@router.post("/release-all")
async def release_all(request: Request) -> dict:
    _holds(request).release_all()
    return {"released": True}


@router.get("/{job_id}/{point}")
async def state(job_id: str, point: Point, request: Request) -> dict:
    return {"state": _holds(request).state(job_id, point)}


@router.post("/{job_id}/{point}/release")
async def release(job_id: str, point: Point, request: Request) -> dict:
    _holds(request).release(job_id, point)
    return {"state": _holds(request).state(job_id, point)}
