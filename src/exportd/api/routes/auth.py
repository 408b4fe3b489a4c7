"""Accounts: register, log in (cookie and token), log out, who am I, am I signed in."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from exportd.api.deps import COOKIE, AppServices, CurrentUser, bearer_or_cookie
from exportd.domain.errors import Unauthorized
from exportd.domain.requests import Credentials, LoginRequest
from exportd.store.repository import iso
from exportd.views import user_view

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/register", status_code=201)
async def register(body: Credentials, services: AppServices) -> dict:
    return {"success": True, "user": user_view(await services.register(body))}


@router.post("/login")
async def login(body: LoginRequest, request: Request, response: Response, services: AppServices) -> dict:
    user, token, expires = await services.login(body.email, body.password)
    response.set_cookie(COOKIE, token, httponly=True, samesite="lax", secure=request.url.scheme == "https",
                        max_age=int(services.settings.access_token_seconds), path="/")
    return {"success": True, "token": token, "expiresAt": iso(expires), "user": user_view(user)}


@router.post("/logout")
async def logout(response: Response) -> dict:
    response.delete_cookie(COOKIE, path="/")
    return {"success": True}


@router.get("/me")
async def me(user: CurrentUser) -> dict:
    return {"success": True, "user": user_view(user)}


@router.get("/session")
async def session(request: Request, response: Response, services: AppServices) -> dict:
    """Who is signed in, or `user: null`: for a page that asks before it knows (a 200 either way,
    so a browser's first visit logs no failed request). An expired or invalid cookie is cleared."""
    token = bearer_or_cookie(request)
    if token is None:
        return {"success": True, "user": None}
    try:
        user = await services.authenticate(token)
    except Unauthorized:
        response.delete_cookie(COOKIE, path="/")
        return {"success": True, "user": None}
    return {"success": True, "user": user_view(user)}
