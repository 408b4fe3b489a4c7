"""The Socket.IO server: authenticate, join the user's room, answer sync and cancel.

A connection authenticates with the same JWT as HTTP (``auth: {token}`` or the
``access_token`` cookie) and joins ``user:<id>``. Client messages are answered
through acknowledgements; a malformed one gets an error ack and never drops the
connection.
"""

from __future__ import annotations

import logging
from http.cookies import SimpleCookie
from typing import Any

import socketio
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from exportd.api.deps import COOKIE
from exportd.domain.errors import BadRequest, ExportdError, Unauthorized
from exportd.realtime.origins import origin_check
from exportd.services import Services
from exportd.views import cancel_view, error_view, job_view

log = logging.getLogger(__name__)


def room(user_id: str) -> str:
    return f"user:{user_id}"


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class SyncMessage(_Message):
    jobId: str = Field(min_length=1, max_length=64)
    afterSeq: int = Field(0, ge=0)


class CancelMessage(_Message):
    jobId: str = Field(min_length=1, max_length=64)
    projectId: str = Field(min_length=1, max_length=64)


def create_sio(services: Services, *, allowed_origins: list[str], client_manager=None) -> socketio.AsyncServer:
    """The server; a browser handshake is accepted only from the origins `origin_check` allows."""
    sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins=origin_check(allowed_origins),
                               client_manager=client_manager, logger=False, engineio_logger=False)

    @sio.event
    async def connect(sid: str, environ: dict, auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        token = token if isinstance(token, str) and token else _cookie_token(environ)
        if not token:
            raise socketio.exceptions.ConnectionRefusedError({"code": "UNAUTHORIZED",
                                                              "error": "Authentication is required."})
        try:
            user = await services.authenticate(token)
        except Unauthorized as error:
            raise socketio.exceptions.ConnectionRefusedError({"code": error.code, "error": error.message}) from None
        await sio.save_session(sid, {"user_id": user.id})
        await sio.enter_room(sid, room(user.id))

    @sio.on("export:sync")
    async def sync(sid: str, data: Any = None) -> dict:
        async def handle(user_id: str) -> dict:
            message = _parse(SyncMessage, data)
            job, events = await services.sync(user_id, message.jobId, message.afterSeq)
            return {"success": True, "job": job_view(job), "events": events}

        return await _answer(sio, sid, handle)

    @sio.on("export:cancel")
    async def cancel(sid: str, data: Any = None) -> dict:
        async def handle(user_id: str) -> dict:
            message = _parse(CancelMessage, data)
            return cancel_view(await services.cancel(user_id, message.projectId, message.jobId))

        return await _answer(sio, sid, handle)

    @sio.on("*")
    async def unknown(event: str, sid: str, data: Any = None) -> dict:
        return error_view(BadRequest(f"Unknown event {event!r}."))

    return sio


async def _answer(sio: socketio.AsyncServer, sid: str, handle) -> dict:
    try:
        session = await sio.get_session(sid)
        return await handle(session["user_id"])
    except ExportdError as error:
        return error_view(error)
    except Exception:  # an ack always comes back, whatever happened
        log.exception("socket handler failed")
        return {"success": False, "error": "Internal server error", "code": "INTERNAL_ERROR"}


def _parse(model: type[_Message], data: Any) -> Any:
    if not isinstance(data, dict):
        raise BadRequest("The message must be an object.")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise BadRequest(f"{field}: {first['msg']}", field=field) from None


def _cookie_token(environ: dict) -> str | None:
    raw = environ.get("HTTP_COOKIE")
    if not raw:
        return None
    cookie = SimpleCookie()
    try:
        cookie.load(raw)
    except Exception:
        return None
    morsel = cookie.get(COOKIE)
    return morsel.value if morsel else None
