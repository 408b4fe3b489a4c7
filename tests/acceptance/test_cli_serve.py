"""The README's first command: `exportd serve --demo` on the embedded default, as a real process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

EXPORTD = Path(sys.executable).with_name("exportd")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"exportd exited with {process.returncode}: {process.stdout.read()}")
        try:
            if httpx.get(f"{url}/api/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("exportd did not become healthy")


@pytest.fixture
def demo_server(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORTD_")}
    process = subprocess.Popen([str(EXPORTD), "serve", "--demo", "--port", str(port)], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        yield url, tmp_path, process
    finally:
        process.terminate()
        process.wait(20)


def test_serve_demo_seeds_the_demo_user_and_project_and_exports_it(demo_server):
    url, folder, _ = demo_server
    with httpx.Client(base_url=url, timeout=30) as http:
        login = http.post("/api/auth/login", json={"email": "demo@example.com", "password": "demo1234"})
        assert login.status_code == 200
        assert "access_token" in login.cookies  # the cookie alone now authenticates this client
        projects = http.get("/api/projects").json()["projects"]
        assert [(p["name"], p["imageCount"]) for p in projects] == [("Demo spheroids", 24)]
        project = http.get(f"/api/projects/{projects[0]['id']}").json()
        assert all(image["polygonCount"] > 0 for image in project["images"])

        job = http.post(f"/api/projects/{project['id']}/export", json={}).json()
        deadline = time.monotonic() + 60
        while (status := http.get(f"/api/projects/{project['id']}/export/{job['id']}/status").json())[
                "status"] not in ("completed", "failed", "cancelled"):
            assert time.monotonic() < deadline, status
            time.sleep(0.05)
        assert status["status"] == "completed"
        download = http.get(f"/api/projects/{project['id']}/export/{job['id']}/download")
        assert download.status_code == 200 and download.content[:2] == b"PK"

    data = folder / "exportd-data"
    assert (data / "exportd.db").is_file() and (data / "secret_key").stat().st_mode & 0o777 == 0o600


def test_serve_demo_twice_keeps_one_demo_project(demo_server, tmp_path):
    url, folder, process = demo_server
    process.terminate()
    process.wait(20)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORTD_")}
    again = subprocess.Popen([str(EXPORTD), "serve", "--demo", "--port", str(port)], cwd=folder, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", again)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            http.post("/api/auth/login", json={"email": "demo@example.com", "password": "demo1234"})
            assert len(http.get("/api/projects").json()["projects"]) == 1
    finally:
        again.terminate()
        again.wait(20)


def test_migrate_brings_an_empty_data_folder_up_to_date(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORTD_")}
    result = subprocess.run([str(EXPORTD), "migrate", "--data-dir", str(tmp_path / "d")], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    import sqlite3

    tables = {row[0] for row in sqlite3.connect(tmp_path / "d" / "exportd.db").execute(
        "select name from sqlite_master where type='table'")}
    assert {"users", "projects", "export_jobs", "export_events", "idempotency_keys", "alembic_version"} <= tables


def test_serve_on_a_port_in_use_says_so_and_exits_non_zero_without_announcing_itself(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORTD_")}
        done = subprocess.run([str(EXPORTD), "serve", "--demo", "--port", str(port)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "exportd on" not in done.stdout and "Demo ready" not in done.stdout, done.stdout
    assert f"cannot listen on 127.0.0.1:{port}" in " ".join(done.stderr.split()), done.stderr
    assert "Traceback" not in done.stderr
