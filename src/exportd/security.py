"""Passwords and signed tokens (access tokens and short-lived download tokens)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from exportd.domain.errors import Unauthorized

_ALGORITHM = "HS256"


class Passwords:
    def __init__(self, *, fast: bool = False) -> None:
        # fast: the cheapest parameters argon2 allows, for test suites that register many users
        self._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1) if fast else PasswordHasher()

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False


class Tokens:
    def __init__(self, secret: str, *, access_seconds: float, download_seconds: float) -> None:
        self._secret = secret
        self._access = timedelta(seconds=access_seconds)
        self._download = timedelta(seconds=download_seconds)

    def access_token(self, user_id: str) -> tuple[str, datetime]:
        return self._sign({"sub": user_id, "typ": "access"}, self._access)

    def download_token(self, user_id: str, job_id: str) -> tuple[str, datetime]:
        return self._sign({"sub": user_id, "typ": "download", "job": job_id}, self._download)

    def user_from_access_token(self, token: str) -> str:
        return self._decode(token, "access")["sub"]

    def user_from_download_token(self, token: str, job_id: str) -> str:
        claims = self._decode(token, "download")
        if claims.get("job") != job_id:
            raise Unauthorized("This download token is for another export.")
        return claims["sub"]

    def _sign(self, claims: dict, lifetime: timedelta) -> tuple[str, datetime]:
        now = datetime.now(UTC)
        expires = now + lifetime
        token = jwt.encode({**claims, "iat": now, "exp": expires}, self._secret, algorithm=_ALGORITHM)
        return token, expires

    def _decode(self, token: str, kind: str) -> dict:
        try:
            claims = jwt.decode(token, self._secret, algorithms=[_ALGORITHM], options={"require": ["exp", "sub"]})
        except jwt.ExpiredSignatureError as error:
            raise Unauthorized("The token has expired.") from error
        except jwt.PyJWTError as error:
            raise Unauthorized("The token is not valid.") from error
        if claims.get("typ") != kind:
            raise Unauthorized("The token is not valid here.")
        return claims
