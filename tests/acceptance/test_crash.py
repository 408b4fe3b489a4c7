"""`kill -9` of a real `exportd serve` mid-export: no process of its pool survives it, and the next start
finishes the export on a second attempt without the crashed attempt's folder."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from exportd.synthetic import synthetic_project

PASSWORD = "correct horse"
EVERYTHING = {"options": {"includeVisualizations": True, "annotationFormats": ["coco"],
                          "metricsFormats": ["excel", "csv"]}}


def poll(predicate, timeout: float, message: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(0.05)
    return value


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (children, their children, …), read from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None and stat[0] != "Z":
            parents.setdefault(stat[1], []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pids: set[int]) -> set[int]:
    """Those of `pids` still running (a zombie is dead: it only waits to be reaped)."""
    return {pid for pid in pids if (stat := _stat(pid)) is not None and stat[0] != "Z"}


def _described(pids: set[int]) -> list[tuple[int, str]]:
    """Each process with its command line, for a failure message."""
    described = []
    for pid in sorted(pids):
        try:
            described.append((pid, Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]))
        except OSError:
            described.append((pid, "?"))
    return described


def _stat(pid: int) -> tuple[str, int] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    state, ppid = text.rsplit(")", 1)[1].split()[:2]
    return state, int(ppid)


class Served:
    def __init__(self, folder: Path, **settings: str) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORTD_")}
        env.update({"EXPORTD_PASSWORD_HASH_FAST": "true", "EXPORTD_SECRET_KEY": "crash-tests-secret-0123456789abcdef",
                    "EXPORTD_EXPORT_PROCESSES": "2", "EXPORTD_LEASE_SECONDS": "1", **settings})
        self.log = (folder / "server.log").open("ab")
        self.process = subprocess.Popen([sys.executable, "-c", "from exportd.cli import main; main()", "serve", "--port", str(port),
                                         "--data-dir", str(folder / "data")],
                                        env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        poll(self._ready, 60, "exportd serve to start")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"exportd serve exited with {self.process.returncode}")
        try:
            return self.http.get("/api/readyz").status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)
        self.http.close()
        self.log.close()


def test_kill_9_of_the_server_leaves_no_child_and_the_next_start_finishes_the_export_on_attempt_2(tmp_path):
    first = Served(tmp_path, EXPORTD_PIPELINE_ITEM_DELAY_SECONDS="0.2")
    survivors: set[int] = set()
    try:
        http = first.http
        assert http.post("/api/auth/register", json={"email": "ada@example.com", "password": PASSWORD}).is_success
        token = http.post("/api/auth/login", json={"email": "ada@example.com", "password": PASSWORD}).json()["token"]
        http.headers["Authorization"] = f"Bearer {token}"
        project = http.post("/api/projects", json={"name": "Spheroids"}).json()["id"]
        files, segmentation = [], {}
        for name, png, polygons in synthetic_project(count=3, seed=4):
            files.append(("files", (name, png, "image/png")))
            segmentation[name] = polygons
        assert http.post(f"/api/projects/{project}/images", files=files,
                         data={"segmentation": json.dumps(segmentation)}).status_code == 201
        job = http.post(f"/api/projects/{project}/export", json=EVERYTHING).json()["id"]

        def pool_at_work():  # the forkserver and at least one worker forked from it, an export running
            children = descendants(first.process.pid)
            grandchildren = children - {pid for pid in children if _stat(pid) and _stat(pid)[1] == first.process.pid}
            running = http.get(f"/api/projects/{project}/export/{job}/status").json()["status"] == "processing"
            return running and grandchildren and children

        children = poll(pool_at_work, 30, "the process pool to work on the export")
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(10)
        # the forkserver hears its parent's end on a pipe, its workers by PR_SET_PDEATHSIG: on a loaded
        # machine at the pool's lower priority that can take seconds, so the deadline is generous
        poll(lambda: not alive(children), 30, f"the server's children {_described(alive(children))} to exit")
    finally:
        survivors = alive(descendants(first.process.pid)) if first.process.poll() is None else set()
        first.stop()
    assert not survivors
    crashed = tmp_path / "data" / "storage" / "exports" / f"{job}.1"
    assert crashed.is_dir()  # what the crash left behind

    second = Served(tmp_path)
    try:
        second.http.headers["Authorization"] = f"Bearer {token}"

        def finished():
            status = second.http.get(f"/api/projects/{project}/export/{job}/status").json()
            return status if status["status"] in ("completed", "failed", "cancelled") else None

        final = poll(finished, 60, "the export to finish after the restart")
        assert final["status"] == "completed" and final["attempt"] == 2, final
        assert not crashed.exists()
        download = second.http.get(f"/api/projects/{project}/export/{job}/download")
        assert download.status_code == 200 and download.content[:2] == b"PK"
    finally:
        second.stop()
