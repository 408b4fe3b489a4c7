"""Accounts: register, log in (cookie and token), log out, who am I."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from exportd.api.deps import COOKIE, AppServices, CurrentUser
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
