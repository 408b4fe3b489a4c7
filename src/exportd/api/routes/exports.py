"""Export jobs: start, watch, cancel, download, discard, history."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from exportd.api.deps import AppServices, CurrentUser, CurrentUserId, IdempotencyKey, bearer_or_cookie
from exportd.domain.errors import Unauthorized
from exportd.domain.events import events_json_schema
from exportd.domain.filenames import ascii_fallback
from exportd.domain.options import dialog_defaults
from exportd.domain.requests import ExportRequest
from exportd.services import MAX_SEQ
from exportd.store.repository import iso
from exportd.views import cancel_view, job_view, start_view

router = APIRouter(tags=["exports"])
JOB = "/projects/{project_id}/export/{job_id}"
CHUNK = 256 * 1024


@router.post("/projects/{project_id}/export", status_code=202)
async def start_export(project_id: str, user_id: CurrentUserId, services: AppServices, key: IdempotencyKey = None,
                       body: ExportRequest | None = None) -> JSONResponse:
    # the admission's transaction checks the account (see Services.start_export): one trip, not two
    job, created = await services.start_export(user_id, project_id, body or ExportRequest(), key)
    headers = {} if created else {"Idempotent-Replayed": "true"}
    return JSONResponse(start_view(job), status_code=202, headers=headers)


@router.get("/projects/{project_id}/export/history")
async def history(project_id: str, user: CurrentUser, services: AppServices,
                  limit: Annotated[int, Query(ge=1, le=100)] = 20,
                  offset: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0) -> dict:
    """The caller's jobs for the project, newest first; `offset` skips that many (for paging)."""
    return {"jobs": [job_view(job) for job in await services.history(user.id, project_id, limit, offset)]}


@router.get(JOB + "/status")
async def status(project_id: str, job_id: str, user: CurrentUser, services: AppServices) -> dict:
    return job_view(await services.job(user.id, project_id, job_id))


@router.get(JOB + "/events")
async def events(project_id: str, job_id: str, user: CurrentUser, services: AppServices,
                 after: Annotated[int, Query(ge=0)] = 0) -> dict:
    job, stored = await services.events(user.id, project_id, job_id, after)
    return {"jobId": job.id, "status": job.status, "seq": job.seq, "events": stored}


@router.post(JOB + "/cancel")
async def cancel(project_id: str, job_id: str, user_id: CurrentUserId, services: AppServices) -> dict:
    return cancel_view(await services.cancel(user_id, project_id, job_id))  # one trip: see Services.cancel


@router.post(JOB + "/download-token")
async def download_token(project_id: str, job_id: str, user: CurrentUser, services: AppServices) -> dict:
    token, expires = await services.download_token(user.id, project_id, job_id)
    return {"token": token, "expiresAt": iso(expires),
            "url": f"/api/projects/{project_id}/export/{job_id}/download?token={quote(token)}"}


@router.get(JOB + "/download", response_class=Response,
            responses={200: {"content": {"application/zip": {}}, "description": "The ZIP"}})
async def download(project_id: str, job_id: str, request: Request, services: AppServices,
                   token: Annotated[str | None, Query(max_length=4096)] = None) -> StreamingResponse:
    if token is not None:
        user_id = services.tokens.user_from_download_token(token, job_id)
    else:
        credentials = bearer_or_cookie(request)
        if credentials is None:
            raise Unauthorized()
        user_id = (await services.authenticate(credentials)).id
    export = await services.open_download(user_id, project_id, job_id)

    async def chunks():
        try:
            await services.hooks.before_download_stream(job_id)
            while data := await anyio.to_thread.run_sync(export.handle.read, CHUNK):
                yield data
        finally:
            export.handle.close()

    disposition = attachment(export.file_name)
    return StreamingResponse(chunks(), media_type="application/zip",
                             headers={"Content-Length": str(export.size), "Content-Disposition": disposition,
                                      "Cache-Control": "no-store"})


def attachment(file_name: str) -> str:
    """Content-Disposition for a download: the name in UTF-8 (RFC 5987 `filename*`, which browsers
    prefer) and an ASCII fallback for clients that only read `filename`."""
    return f"attachment; filename=\"{ascii_fallback(file_name)}\"; filename*=UTF-8''{quote(file_name, safe='')}"


@router.delete(JOB, status_code=204)
async def discard(project_id: str, job_id: str, user: CurrentUser, services: AppServices) -> Response:
    await services.discard(user.id, project_id, job_id)
    return Response(status_code=204)


@router.get("/export/formats")
async def formats(services: AppServices) -> dict:
    return services.formats()


@router.get("/export/defaults")
async def defaults() -> dict:
    """The options an export gets when it names none, and the ranges of the browser dialog's sliders."""
    return dialog_defaults()


@router.get("/export/events/schema")
async def event_schema() -> dict:
    return events_json_schema()
