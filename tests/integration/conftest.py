"""Every integration test runs on both stores: SQLite (embedded) and PostgreSQL (scaled out)."""

from __future__ import annotations

import os
import uuid

import pytest

PG_ADMIN_DSN = os.environ.get("EXPORTD_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


async def _admin():
    import asyncpg

    return await asyncpg.connect(PG_ADMIN_DSN, timeout=5)


@pytest.fixture(params=["sqlite", "postgres"], autouse=True)
async def backend(request, monkeypatch):
    if request.param == "sqlite":
        yield "sqlite"
        return
    try:
        admin = await _admin()
    except (OSError, Exception) as error:  # noqa: BLE001 - any failure to reach PostgreSQL
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_DSN}: {error}")
    name = f"exportd_test_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    host_part = PG_ADMIN_DSN.split("://", 1)[1].rsplit("/", 1)[0]
    monkeypatch.setenv("EXPORTD_DATABASE_URL", f"postgresql+asyncpg://{host_part}/{name}")
    try:
        yield "postgres"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
