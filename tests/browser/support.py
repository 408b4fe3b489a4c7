"""What the browser tests share: the served process seen from outside, downloads, polls with a deadline."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from exportd.synthetic import synthetic_project

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORD = "correct horse"
TERMINAL = {"completed", "failed", "cancelled"}


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05, message: str = "condition"):
    """Poll `predicate` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(interval)


@dataclass
class Account:
    email: str
    token: str
    project_id: str


@dataclass
class Server:
    """A running ``exportd serve`` and an HTTP client for setting up and checking from the outside."""

    url: str
    process: subprocess.Popen
    log: Path
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url, timeout=30)

    @property
    def data(self) -> Path:
        """The server's data folder (its store and its files)."""
        return self.log.parent / "data"

    @classmethod
    def start(cls, folder: Path, **settings: str) -> Server:
        """``exportd serve`` on a free port, data and log in `folder`, test holds on; `settings`: more
        ``EXPORTD_*`` variables. Returns once it is ready."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = {**os.environ, "EXPORTD_TEST_HOLDS": "true", "EXPORTD_PASSWORD_HASH_FAST": "true",
               "EXPORTD_SECRET_KEY": "browser-tests-secret-key-0123456789abcdef", "EXPORTD_EXPORT_PROCESSES": "0",
               "EXPORTD_PROGRESS_INTERVAL_SECONDS": "0.05", **settings}
        log = folder / "server.log"
        with log.open("wb") as out:
            process = subprocess.Popen([sys.executable, "-c", "from exportd.cli import main; main()", "serve",
                                        "--port", str(port), "--data-dir", str(folder / "data")],
                                       env=env, stdout=out, stderr=subprocess.STDOUT)
        server = cls(f"http://127.0.0.1:{port}", process, log)
        try:
            wait_for(lambda: server._ready() or process.poll() is not None, 30, message="exportd serve to start")
            if process.poll() is not None:
                raise AssertionError(f"exportd serve exited:\n{log.read_text()}")
        except BaseException:
            server.stop()
            raise
        return server

    def stop(self) -> None:
        if self.process.poll() is None:
            self.release_all()  # no pipeline thread left waiting on a hold
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.http.close()

    def _ready(self) -> bool:
        try:
            return self.http.get("/api/readyz").status_code == 200
        except httpx.TransportError:
            return False

    def account(self, images: int = 4) -> Account:
        """A new user with one project of `images` synthetic images."""
        email = f"user-{uuid.uuid4().hex[:8]}@example.com"
        assert self.http.post("/api/auth/register", json={"email": email, "password": PASSWORD}).status_code == 201
        token = self.http.post("/api/auth/login", json={"email": email, "password": PASSWORD}).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        project = self.http.post("/api/projects", json={"name": "Spheroids"}, headers=auth).json()
        files, segmentation = [], {}
        for name, png, polygons in synthetic_project(count=images, seed=3):
            files.append(("files", (name, png, "image/png")))
            segmentation[name] = polygons
        uploaded = self.http.post(f"/api/projects/{project['id']}/images", files=files, headers=auth,
                                  data={"segmentation": json.dumps(segmentation)})
        assert uploaded.status_code == 201, uploaded.text
        return Account(email, token, project["id"])

    def hold(self, point: str, after_items: int = 1) -> None:
        """Hold every job started from now on at `point` (``item`` or ``before_complete``)."""
        response = self.http.post("/api/testing/holds", json={"point": point, "afterItems": after_items})
        assert response.status_code == 200, response.text

    def held(self, job_id: str, point: str, timeout: float = 15.0) -> None:
        wait_for(lambda: self._hold_state(job_id, point) == "held", timeout, message=f"{job_id} held at {point}")

    def release(self, job_id: str, point: str) -> None:
        assert self.http.post(f"/api/testing/holds/{job_id}/{point}/release").status_code == 200

    def release_all(self) -> None:
        self.http.post("/api/testing/holds/release-all")

    def _hold_state(self, job_id: str, point: str) -> str:
        return self.http.get(f"/api/testing/holds/{job_id}/{point}").json()["state"]

    def jobs(self, account: Account) -> list[dict]:
        response = self.http.get(f"/api/projects/{account.project_id}/export/history",
                                 headers={"Authorization": f"Bearer {account.token}"})
        assert response.status_code == 200, response.text
        body = response.json()
        return body["jobs"] if isinstance(body, dict) else body

    def the_job(self, account: Account, timeout: float = 15.0) -> dict:
        """The account's only job, once it exists."""
        return wait_for(lambda: (self.jobs(account) or [None])[0], timeout, message="the export to start")

    def status(self, account: Account, job_id: str) -> dict:
        response = self.http.get(f"/api/projects/{account.project_id}/export/{job_id}/status",
                                 headers={"Authorization": f"Bearer {account.token}"})
        assert response.status_code == 200, response.text
        return response.json()

    def events(self, account: Account, job_id: str) -> list[dict]:
        response = self.http.get(f"/api/projects/{account.project_id}/export/{job_id}/events",
                                 params={"after": 0}, headers={"Authorization": f"Bearer {account.token}"})
        assert response.status_code == 200, response.text
        body = response.json()
        return body["events"] if isinstance(body, dict) else body

    def settled(self, account: Account, job_id: str, timeout: float = 30.0) -> dict:
        return wait_for(lambda: (job := self.status(account, job_id))["status"] in TERMINAL and job,
                        timeout, message=f"job {job_id} to finish")


@dataclass
class Downloads:
    """Every download any page of a context started (recorded by the context's pages' handlers)."""

    folder: Path
    started: list = field(default_factory=list)

    def record(self, download) -> None:
        self.started.append(download)

    def __len__(self) -> int:
        return len(self.started)

    def saved(self, index: int = 0) -> Path:
        download = self.started[index]
        target = self.folder / f"{index}-{download.suggested_filename}"
        download.save_as(target)
        return target


def is_valid_zip(path: Path) -> bool:
    with zipfile.ZipFile(path) as archive:
        return archive.testzip() is None and "metadata.json" in archive.namelist()
