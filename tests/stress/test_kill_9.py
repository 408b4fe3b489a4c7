"""`kill -9` of a real `exportd serve` mid-export, round after round, restarted each time.

At the end, with short leases: no job is left `pending` or `processing`, the export folder holds
only the published attempts' ZIPs (no folder of an attempt that did not publish), and no process
of any killed server (forkserver, pool workers, resource tracker) outlived it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
import zipfile

import pytest

from exportd.synthetic import synthetic_project
from tests.acceptance.test_crash import EVERYTHING, PASSWORD, Served, _stat, alive, descendants, poll

TERMINAL = ("completed", "failed", "cancelled")
EXPORTS_PER_ROUND = 2


def settings(backend: str, **more: str) -> dict[str, str]:
    values = {"EXPORTD_MAX_ACTIVE_EXPORTS_PER_USER": "1000", "EXPORTD_JANITOR_INTERVAL_SECONDS": "0.5", **more}
    if backend == "postgres":  # the server is started with a clean EXPORTD_* environment
        values["EXPORTD_DATABASE_URL"] = os.environ["EXPORTD_DATABASE_URL"]
    return values


def sign_in(server: Served, first: bool) -> None:
    http = server.http
    if first:
        assert http.post("/api/auth/register", json={"email": "ada@example.com", "password": PASSWORD}).is_success
    token = http.post("/api/auth/login", json={"email": "ada@example.com", "password": PASSWORD}).json()["token"]
    http.headers["Authorization"] = f"Bearer {token}"


def new_project(server: Served) -> str:
    http = server.http
    project = http.post("/api/projects", json={"name": "Spheroids"}).json()["id"]
    files, segmentation = [], {}
    for name, png, polygons in synthetic_project(count=3, seed=4):
        files.append(("files", (name, png, "image/png")))
        segmentation[name] = polygons
    assert http.post(f"/api/projects/{project}/images", files=files,
                     data={"segmentation": json.dumps(segmentation)}).status_code == 201
    return project


def status_of(server: Served, project: str, job: str) -> dict:
    response = server.http.get(f"/api/projects/{project}/export/{job}/status")
    assert response.status_code == 200, response.text
    return response.json()


def kill_mid_export(server: Served, project: str, jobs: list[str], delay: float) -> set[int]:
    """Once the process pool works on an export, wait `delay`, kill -9 the server; returns the processes
    that outlived it (none expected)."""
    pid = server.process.pid

    def pool_at_work():
        children = descendants(pid)
        grandchildren = {p for p in children if (stat := _stat(p)) is not None and stat[1] != pid}
        processing = any(status_of(server, project, job)["status"] == "processing" for job in jobs)
        return processing and grandchildren and children

    poll(pool_at_work, 60, "the process pool to work on an export")
    time.sleep(delay)  # a random moment of the export, not a synchronisation
    children = descendants(pid)
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(10)
    server.stop()
    deadline = time.monotonic() + 10
    while alive(children) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = alive(children)
    for orphan in left:  # recorded for the assertion; killed so a failing run leaves nothing behind
        os.kill(orphan, signal.SIGKILL)
    return left


@pytest.mark.parametrize("rounds", [1, pytest.param(50, marks=pytest.mark.stress)])
def test_kill_9_rounds_leave_no_stuck_job_no_orphan_folder_and_no_orphan_process(tmp_path, backend, rounds):
    rng = random.Random(rounds)
    slow = settings(backend, EXPORTD_PIPELINE_ITEM_DELAY_SECONDS="0.2")
    jobs: list[str] = []
    survivors: dict[int, set[int]] = {}
    project = ""
    for number in range(rounds):
        server = Served(tmp_path, **slow)
        try:
            sign_in(server, first=number == 0)
            project = project or new_project(server)
            started = []
            for _ in range(EXPORTS_PER_ROUND):
                response = server.http.post(f"/api/projects/{project}/export", json=EVERYTHING)
                assert response.status_code == 202, response.text
                started.append(response.json()["id"])
            jobs.extend(started)
            if left := kill_mid_export(server, project, started, rng.uniform(0, 0.6)):
                survivors[number] = left
        finally:
            if server.process.poll() is None:
                server.process.kill()
                server.process.wait(10)
            server.stop()

    final = Served(tmp_path, **settings(backend))
    try:
        sign_in(final, first=False)

        def all_over():
            states = {job: status_of(final, project, job) for job in jobs}
            return states if all(s["status"] in TERMINAL for s in states.values()) else None

        states = poll(all_over, 60 + 5 * rounds, "every job to end after the last restart")
        exports = tmp_path / "data" / "storage" / "exports"
        wanted = sorted(f"{job}.{s['attempt']}" for job, s in states.items() if s["status"] == "completed")

        def only_published():
            return sorted(p.name for p in exports.iterdir()) == wanted

        poll(only_published, 30, "the folders of attempts that did not publish to go")
        for name in wanted:
            files = list((exports / name).iterdir())
            assert len(files) == 1 and files[0].suffix == ".zip", files
            with zipfile.ZipFile(files[0]) as archive:
                assert archive.testzip() is None
        final_children = descendants(final.process.pid)
    finally:
        final.stop()
    poll(lambda: not alive(final_children), 30, "the last server's children to exit with it")
    assert survivors == {}, survivors
    assert len(jobs) == rounds * EXPORTS_PER_ROUND
    counts = {state: sum(s["status"] == state for s in states.values()) for state in TERMINAL}
    print(f"kill -9 {backend}: {rounds} rounds, {len(jobs)} exports, {counts}")
