"""Dependencies routes declare, as Annotated aliases that read like a sentence.

Each is a coroutine function, even where it awaits nothing: FastAPI runs a plain
function dependency in its thread pool, a hop there and back (and a wait for the
GIL against the pipeline threads) per dependency per request. Reading a header
and checking a token's signature take microseconds; the hops took most of what
a cancel cost above `GET /api/healthz` (see docs/decisions.md).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy import Row

from exportd.domain.errors import Unauthorized
from exportd.services import Services

COOKIE = "access_token"


async def get_services(request: Request) -> Services:
    return request.app.state.runtime.services


def bearer_or_cookie(request: Request) -> str | None:
    authorization = request.headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.cookies.get(COOKIE) or None


def _required_token(request: Request) -> str:
    token = bearer_or_cookie(request)
    if token is None:
        raise Unauthorized()
    return token


async def get_current_user(request: Request, services: Annotated[Services, Depends(get_services)]) -> Row:
    return await services.authenticate(_required_token(request))


async def get_current_user_id(request: Request, services: Annotated[Services, Depends(get_services)]) -> str:
    """The token's user, not yet looked up: for routes whose own transaction checks the account."""
    return services.token_user_id(_required_token(request))


AppServices = Annotated[Services, Depends(get_services)]
CurrentUser = Annotated[Row, Depends(get_current_user)]
CurrentUserId = Annotated[str, Depends(get_current_user_id)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]
