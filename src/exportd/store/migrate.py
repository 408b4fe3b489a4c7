"""Apply the Alembic migrations that ship inside the package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import create_async_engine

MIGRATION_LOCK = 0x6578706F7274 + 1  #: the advisory lock migrations hold on PostgreSQL
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url)
    return config


async def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database at `database_url` to `revision` (idempotent)."""
    config = alembic_config(database_url)
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            def _upgrade(sync_conn) -> None:
                if sync_conn.dialect.name == "postgresql":  # several nodes may start at once: one migrates
                    sync_conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
                config.attributes["connection"] = sync_conn
                command.upgrade(config, revision)

            await conn.run_sync(_upgrade)
    finally:
        await engine.dispose()
