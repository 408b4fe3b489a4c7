"""The Socket.IO server: authenticate, join the user's room, answer sync and cancel.

A connection authenticates with the same JWT as HTTP (``auth: {token}`` or the
``access_token`` cookie) and joins ``user:<id>``. Client messages are answered
through acknowledgements; a malformed one gets an error ack and never drops the
connection. Every event a client sends with an acknowledgement is answered,
whatever its name, arguments or types; only a packet over ``MAX_MESSAGE_BYTES``
or one that breaks the Socket.IO protocol itself closes that one connection.
"""

from __future__ import annotations

import logging
import traceback
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import socketio
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from exportd.api.deps import COOKIE
from exportd.domain.errors import BadRequest, ExportdError
from exportd.realtime.origins import origin_check
from exportd.services import Services
from exportd.views import cancel_view, error_view, job_view

log = logging.getLogger(__name__)


#: a packet larger than this is a transport violation: Engine.IO closes that connection (the client reconnects)
MAX_MESSAGE_BYTES = 1_000_000


#: the event name a packet gets when it names none (``42{}``, ``42[{"a": 1}]``): answered as an unknown event
MALFORMED_EVENT = "(malformed)"


class _NamedEventPacket(socketio.packet.Packet):
    """python-socketio's packet, except that an event packet always names its event with a string.

    The library indexes its handlers with whatever the client put first, so an event named by an
    object or a list would fail before any handler runs, and the client's call would never be
    answered. Here such a packet becomes an unknown event and gets its error ack like any other.
    """

    def decode(self, encoded_packet):
        attachments = super().decode(encoded_packet)
        if self.packet_type in (socketio.packet.EVENT, socketio.packet.BINARY_EVENT):
            if not isinstance(self.data, list) or not self.data:
                self.data = [MALFORMED_EVENT]
            elif not isinstance(self.data[0], str):
                self.data = [MALFORMED_EVENT, *self.data[1:]]
        return attachments


class _ClientProtocolErrors(logging.Filter):
    """A client's malformed packet is a one-line warning, not an error with a traceback.

    python-socketio raises while it decodes or dispatches a packet that breaks the protocol (a
    CONNECT_ERROR sent by a client, an unknown packet type, text that does not parse), and Engine.IO
    logs each such failure with its traceback at ERROR: any client could fill the log with them.
    A failure that went through exportd's own handlers keeps its traceback and its level.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and not _through_own_code(error):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg, record.args = "malformed Socket.IO message from a client: %s: %s", (type(error).__name__, error)
            record.exc_info, record.exc_text = None, None
        return True


_OWN_CODE = str(Path(__file__).resolve().parents[1])


def _through_own_code(error: BaseException) -> bool:
    """Whether any frame of the error's traceback is exportd's, other than the packet decoder's."""
    decoder = _NamedEventPacket.decode.__code__
    return any(frame.f_code.co_filename.startswith(_OWN_CODE) and frame.f_code is not decoder
               for frame, _ in traceback.walk_tb(error.__traceback__))


#: Engine.IO's logger: errors only, as by default, with clients' protocol errors told in one line
transport_log = logging.getLogger("exportd.realtime.transport")
transport_log.setLevel(logging.ERROR)
transport_log.addFilter(_ClientProtocolErrors())


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
                               client_manager=client_manager, logger=False, engineio_logger=transport_log,
                               max_http_buffer_size=MAX_MESSAGE_BYTES, serializer=_NamedEventPacket)

    @sio.event
    async def connect(sid: str, environ: Any = None, auth: Any = None, *extra: Any) -> dict | None:
        if (await sio.get_session(sid)).get("user_id"):
            # not a handshake: a connected client sent an event named "connect"; it changes nothing
            return _unknown("connect")
        token = auth.get("token") if isinstance(auth, dict) else None
        token = token if isinstance(token, str) and token else _cookie_token(environ)
        if not token:
            raise socketio.exceptions.ConnectionRefusedError({"code": "UNAUTHORIZED",
                                                              "error": "Authentication is required."})
        try:
            user = await services.authenticate(token)
        except ExportdError as error:  # a bad token, or a store that cannot answer now
            raise socketio.exceptions.ConnectionRefusedError({"code": error.code, "error": error.message}) from None
        await sio.save_session(sid, {"user_id": user.id})
        await sio.enter_room(sid, room(user.id))
        return None

    @sio.on("export:sync")
    async def sync(sid: str, *data: Any) -> dict:
        async def handle(user_id: str) -> dict:
            message = _parse(SyncMessage, data)
            job, events = await services.sync(user_id, message.jobId, message.afterSeq)
            return {"success": True, "job": job_view(job), "events": events}

        return await _answer(sio, sid, handle)

    @sio.on("export:cancel")
    async def cancel(sid: str, *data: Any) -> dict:
        async def handle(user_id: str) -> dict:
            message = _parse(CancelMessage, data)
            return cancel_view(await services.cancel(user_id, message.projectId, message.jobId))

        return await _answer(sio, sid, handle)

    @sio.event
    async def disconnect(sid: str, *data: Any) -> dict:
        return _unknown("disconnect")  # acks a client's event of that name; a real disconnect ignores it

    @sio.on("*")
    async def unknown(event: Any, sid: str, *data: Any) -> dict:
        return _unknown(event)

    return sio


def _unknown(event: Any) -> dict:
    name = event if isinstance(event, str) else repr(event)
    shown = name if len(name) <= 64 else name[:64] + "…"  # a huge name is not echoed back
    return error_view(BadRequest(f"Unknown event {shown!r}."))


async def _answer(sio: socketio.AsyncServer, sid: str, handle) -> dict:
    try:
        session = await sio.get_session(sid)
        return await handle(session["user_id"])
    except ExportdError as error:
        return error_view(error)
    except Exception:  # an ack always comes back, whatever happened
        log.exception("socket handler failed")
        return {"success": False, "error": "Internal server error", "code": "INTERNAL_ERROR"}


def _parse(model: type[_Message], arguments: tuple[Any, ...]) -> Any:
    """The message: exactly one object, valid for `model`."""
    if len(arguments) != 1 or not isinstance(arguments[0], dict):
        raise BadRequest("The message must be one object.")
    data = arguments[0]
    try:
        return model.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise BadRequest(f"{field}: {first['msg']}", field=field) from None


def _cookie_token(environ: Any) -> str | None:
    raw = environ.get("HTTP_COOKIE") if isinstance(environ, dict) else None
    if not raw:
        return None
    cookie = SimpleCookie()
    try:
        cookie.load(raw)
    except Exception:
        return None
    morsel = cookie.get(COOKIE)
    return morsel.value if morsel else None
