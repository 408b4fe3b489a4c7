"""Settings, read from ``EXPORTD_*`` environment variables or passed in.

Nothing here runs at import time: ``Settings()`` is built by the CLI or a test
and handed to ``create_app``; ``Settings.resolved()`` fills in the defaults that
depend on the data folder (database file, secret key, storage).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: a list read from one environment variable: a JSON list, or comma-separated
OriginList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EXPORTD_", extra="ignore")

    data_dir: Path = Path("exportd-data")
    storage_dir: Path | None = None  #: uploaded images and exports, a folder every node reads; default: <data>/storage
    database_url: str | None = None  #: default: SQLite in the data folder
    secret_key: str | None = None  #: default: generated once, kept in the data folder (0600)
    public_url: str = ""  #: prefix of download URLs in events; empty means relative

    max_active_exports_per_user: int = Field(1, ge=0)  #: pending and processing exports a user may have; 0: no limit
    worker_concurrency: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    export_processes: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=0)  #: 0: CPU-heavy steps inline
    export_nice: int = Field(10, ge=0, le=19)  #: niceness added to export threads and processes (0: none)
    job_timeout_seconds: float = Field(1800, gt=0)
    retention_seconds: float = Field(86400, gt=0)
    download_token_seconds: float = Field(600, gt=0)
    access_token_seconds: float = Field(7 * 86400, gt=0)

    lease_seconds: float = Field(30, gt=0)  #: a worker renews its lease every third of this
    max_attempts: int = Field(3, ge=1)  #: attempts before a job whose lease expires fails
    store_check_seconds: float = Field(0.5, gt=0)  #: fallback cancel check against the store
    progress_interval_seconds: float = Field(0.25, ge=0)  #: at most one stored progress event per job this often
    janitor_interval_seconds: float = Field(60, gt=0)
    retry_after_seconds: int = Field(5, ge=1)

    max_json_body_bytes: int = Field(1_048_576, ge=1024)
    max_upload_bytes: int = Field(64 * 1_048_576, ge=1024)

    broker_url: str | None = None  #: a Redis URL: the scaled-out shape (`exportd worker` runs the exports)
    celery_queue: str = "exportd"  #: the broker queue the export tasks go to
    pending_resend_seconds: float = Field(30, gt=0)  #: a job pending this long is handed to the broker again
    listener_check_seconds: float = Field(2, gt=0)  #: how often the LISTEN connection proves it is alive

    password_hash_fast: bool = False  #: cheaper argon2 parameters (tests only)
    pipeline_item_delay_seconds: float = Field(0, ge=0)  #: benchmark-only: every item takes this long
    gc_freeze_on_start: bool = True  #: move the startup heap out of the garbage collector's scans
    test_holds: bool = False  #: tests only: /api/testing/holds lets another process hold jobs; never in production
    allowed_origins: OriginList = []  #: browser origins besides the server's own that may open a socket
    cors_origins: OriginList = []  #: the former name of `allowed_origins`, still read

    @field_validator("allowed_origins", "cors_origins", mode="before")
    @classmethod
    def _origin_list(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]

    def resolved(self) -> Settings:
        """A copy with every data-folder default filled in (creates the folder)."""
        data_dir = self.data_dir.expanduser().resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        database_url = self.database_url or f"sqlite+aiosqlite:///{data_dir / 'exportd.db'}"
        secret_key = self.secret_key or _kept_secret(data_dir / "secret_key")
        storage_dir = (self.storage_dir or data_dir / "storage").expanduser().resolve()
        return self.model_copy(update={"data_dir": data_dir, "database_url": database_url, "secret_key": secret_key,
                                       "storage_dir": storage_dir})

    @property
    def socket_origins(self) -> list[str]:
        """Origins a browser may open a socket from besides the one it reached the server at (URLs allowed)."""
        return [*([self.public_url] if self.public_url else []), *self.allowed_origins, *self.cors_origins]

    @property
    def scaled_out(self) -> bool:
        """A broker is set: API nodes hand exports to Celery workers and hear other processes' commits."""
        return bool(self.broker_url)

    @property
    def is_sqlite(self) -> bool:
        return (self.database_url or "").startswith("sqlite")

    @property
    def exports_dir(self) -> Path:
        """Where the local storage keeps export attempts (see `storage.LocalStorage.scratch`)."""
        return (self.storage_dir or self.data_dir / "storage") / "exports"

    def attempt_dir(self, job_id: str, attempt: int) -> Path:
        """The local storage's folder of one attempt at a job (`storage.LocalStorage.scratch`)."""
        return self.exports_dir / f"{job_id}.{attempt}"


def _kept_secret(path: Path) -> str:
    """Read the secret kept at `path`, creating it (mode 0600) the first time."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        key = secrets.token_urlsafe(48)
        handle.write(key)
    return key
