"""PostgreSQL drops the server's connections (`pg_terminate_backend`) again and again while exports run.

Several users start and cancel exports, each with a Socket.IO client recording every event, while the
server's database connections are terminated at random moments: mid-claim, mid-progress, mid-completion,
and the connection the server listens for commits on. A request that meets a dropped connection is
retried as a client would (a start with its `Idempotency-Key`). Afterwards, with the drops stopped: no
job is stuck, every stored log is sound, every client received exactly the stored log of each of its
jobs (no event lost, none twice), and the server is ready and exports again.
"""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest

from tests.acceptance.support import assert_log_is_sound, export_url, running, until_status
from tests.conftest import eventually
from tests.integration.conftest import _admin
from tests.stress.test_races import ClientLog

USERS = 3
TERMINAL = ("completed", "failed", "cancelled")


async def terminate_backends(database: str, stop: asyncio.Event, rng: random.Random) -> int:
    """Terminate every connection to `database` but this one, at random intervals, until `stop`."""
    admin = await _admin()
    killed = 0
    try:
        while not stop.is_set():
            rows = await admin.fetch("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                     "WHERE datname = $1 AND pid <> pg_backend_pid()", database)
            killed += sum(1 for row in rows if row[0])
            await asyncio.sleep(rng.uniform(0.05, 0.5))
    finally:
        await admin.close()
    return killed


async def persistently(call, *, attempts: int = 50):
    """A request as a client makes it: a 503 (the database was unavailable) is retried after a moment."""
    for _ in range(attempts):
        response = await call()
        if response.status_code != 503:
            return response
        await asyncio.sleep(0.05)
    raise AssertionError(f"still 503 after {attempts} attempts: {response.text}")


seen: dict[str, str] = {}


async def until_over(http, project_id: str, job_id: str, timeout: float = 60) -> dict:
    """Poll the job's status as a client would, through 503s, until it is terminal."""
    async def over():
        response = await http.get(export_url(project_id, job_id, "status"))
        assert response.status_code in (200, 503), response.text
        if response.status_code == 200:
            seen[job_id] = response.json()["status"]
        return response.json() if response.status_code == 200 and response.json()["status"] in TERMINAL else None
    return await eventually(over, timeout, interval=0.05, message=f"job {job_id} to end (last seen {seen.get(job_id)})")


async def all_jobs(http, project_id: str) -> list[dict]:
    jobs, offset = [], 0
    while page := (await http.get(export_url(project_id, tail="history"),
                                  params={"limit": 100, "offset": offset})).json()["jobs"]:
        jobs.extend(page)
        offset += len(page)
    return jobs


@pytest.mark.parametrize("exports", [9, pytest.param(300, marks=pytest.mark.stress)])
async def test_connections_dropped_mid_transition_lose_no_event_duplicate_none_and_strand_no_job(
        tmp_path, backend, exports, monkeypatch):
    if backend != "postgres":
        pytest.skip("terminating a connection is PostgreSQL's")
    import os
    database = os.environ["EXPORTD_DATABASE_URL"].rsplit("/", 1)[1]
    rng = random.Random(exports)
    async with running(tmp_path, max_active_exports_per_user=exports, lease_seconds=1,
                       janitor_interval_seconds=0.2, pipeline_item_delay_seconds=0.02) as app:
        users = []
        for n in range(USERS):
            _, token = await app.user(f"user{n}@example.com")
            project_id, _ = await app.project(token, images=3)
            client_log = ClientLog()
            app.sockets.append(client_log.client)
            await client_log.client.connect(app.url, auth={"token": token}, transports=["websocket"],
                                            wait_timeout=10)
            users.append((token, project_id, client_log))
        numbers = iter(range(exports))
        stop = asyncio.Event()
        dropping = asyncio.create_task(terminate_backends(database, stop, rng))

        async def user_session(token: str, project_id: str) -> None:
            async with app.client(token) as http:
                for number in numbers:
                    key = uuid.uuid4().hex
                    started = await persistently(lambda: http.post(
                        export_url(project_id), json={}, headers={"Idempotency-Key": key}))
                    assert started.status_code == 202, started.text
                    job_id = started.json()["id"]
                    if number % 3 == 0:  # every third is cancelled at a random moment
                        await asyncio.sleep(rng.uniform(0, 0.3))
                        cancelled = await persistently(lambda: http.post(export_url(project_id, job_id, "cancel")))
                        assert cancelled.status_code in (200, 409), cancelled.text
                    await until_over(http, project_id, job_id)

        try:
            await asyncio.gather(*(user_session(token, project_id) for token, project_id, _ in users))
        finally:
            stop.set()
            killed = await dropping
        assert killed > 0

        counts = {state: 0 for state in TERMINAL}
        codes: list[str] = []
        for token, project_id, client_log in users:
            async with app.client(token) as http:
                jobs = await all_jobs(http, project_id)
                for job in jobs:  # the store's log of each, and what this user's client received
                    await app.settled(job["id"], timeout=30)
                    stored = await app.stored_log(job["id"])
                    assert_log_is_sound(stored)
                    assert stored[-1]["type"] == f"export:{job['status']}" or job["status"] not in TERMINAL
                    final = await app.stored_job(job["id"])
                    assert final.status in TERMINAL, (job["id"], final.status)
                    counts[final.status] += 1
                    if final.status == "completed":  # its ZIP is there (a lost reply to a completion deletes nothing)
                        download = await persistently(lambda job_id=job["id"]: http.get(
                            export_url(project_id, job_id, "download")))
                        assert download.status_code == 200 and download.content[:2] == b"PK", download.status_code
                    else:
                        codes.append(final.error_code or final.reason)

                    try:
                        await asyncio.wait_for(client_log.ended(job["id"]), 10)
                    except TimeoutError:
                        pass
                    received = client_log.by_job[job["id"]]
                    assert received == stored, (job["id"], [e["seq"] for e in received], [e["seq"] for e in stored])
        assert sum(counts.values()) == exports, counts

        token, project_id, _ = users[0]
        async with app.client(token) as http:
            assert (await http.get("/api/readyz")).status_code == 200
            response = await http.post(export_url(project_id), json={})
            assert response.status_code == 202, response.text
            done = await until_status(http, project_id, response.json()["id"], *TERMINAL, timeout=30)
            assert done["status"] == "completed", done
    print(f"connections dropped: {killed} terminated, {exports} exports, {counts}, {sorted(codes)}")
