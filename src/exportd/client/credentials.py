"""The CLI's stored login: server URL, token and the project of each job it started, in one 0600 file.

The folder is ``EXPORTD_CONFIG_DIR`` when set, else the user's config folder
(platformdirs: ``~/.config/exportd`` on Linux). The file is written to a
temporary file in the same folder (created 0600) and renamed over the old one,
so it is never readable by others, not even for a moment, and never half written.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

CONFIG_DIR_ENV = "EXPORTD_CONFIG_DIR"
FILE_NAME = "credentials.json"
MAX_REMEMBERED_JOBS = 200


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    if environ.get(CONFIG_DIR_ENV):
        return Path(environ[CONFIG_DIR_ENV]).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir("exportd", appauthor=False))


@dataclass
class Credentials:
    server: str
    token: str
    email: str | None = None
    expires_at: str | None = None
    jobs: dict[str, str] = field(default_factory=dict)  #: job id → project id, for jobs this CLI started

    def remember_job(self, job_id: str, project_id: str) -> None:
        self.jobs.pop(job_id, None)
        self.jobs[job_id] = project_id
        while len(self.jobs) > MAX_REMEMBERED_JOBS:
            self.jobs.pop(next(iter(self.jobs)))


class CredentialStore:
    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder if folder is not None else config_dir()

    @property
    def path(self) -> Path:
        return self.folder / FILE_NAME

    def load(self) -> Credentials | None:
        """The stored login, or None when there is none (or it is unreadable)."""
        try:
            data = json.loads(self.path.read_text())
            return Credentials(server=data["server"], token=data["token"], email=data.get("email"),
                               expires_at=data.get("expires_at"), jobs=dict(data.get("jobs") or {}))
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    def save(self, credentials: Credentials) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, temp = tempfile.mkstemp(dir=self.folder, prefix=".credentials.", suffix=".tmp")  # mode 0600
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(asdict(credentials), handle, indent=2)
            os.chmod(temp, 0o600)
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return self.path

    def clear(self) -> bool:
        try:
            self.path.unlink()
            return True
        except FileNotFoundError:
            return False
