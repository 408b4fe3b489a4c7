"""Forced cancel/complete races by the thousand on a served app, checked from the store and from every client.

Every export is held at the point of completion (`EngineHooks.before_complete`); then its cancel and
its release start in a given order, each after a random jitter. Many users race at once, each with
several exports in flight, and each user's Socket.IO client records every event it receives.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from typing import Any

import pytest
import socketio

from exportd.domain.errors import ExportNotCancellable
from exportd.domain.options import ExportOptions
from exportd.domain.requests import ExportRequest
from tests.acceptance.support import TERMINAL, assert_log_is_sound, running

#: the cheapest export: one original and its JSON annotations, so the race dominates the run
RACE = ExportRequest(options=ExportOptions(include_visualizations=False, include_documentation=False,
                                           annotation_formats=["json"], metrics_formats=[]))
USERS = 8
IN_FLIGHT = 2  #: exports each user races at once
JITTER_SECONDS = 0.002
#: when the completion is released first, the cancel comes within this much later: a completion's transaction
#: (the file's name, the guarded UPDATE, the event) takes longer than a cancel's, so with the same short jitter
#: the cancel would almost always still win and the other order would go unmet
HEAD_START_SECONDS = 0.02


class ClientLog:
    """One user's Socket.IO client: every export event it receives, per job, in arrival order."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.by_job: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._ended: dict[str, asyncio.Event] = defaultdict(asyncio.Event)

        @self.client.on("*")
        async def _any(event: str, data: Any) -> None:
            if isinstance(data, dict) and "jobId" in data:
                self.by_job[data["jobId"]].append({**data, "type": event})
                if event in TERMINAL:
                    self._ended[data["jobId"]].set()

    async def ended(self, job_id: str, timeout: float = 120) -> None:
        await asyncio.wait_for(self._ended[job_id].wait(), timeout)


@pytest.mark.parametrize("races", [50, pytest.param(10_000, marks=pytest.mark.stress)])
async def test_forced_cancel_completion_races_leave_one_outcome_each_in_the_store_and_in_every_client(
        tmp_path, backend, races):
    rng = random.Random(20261130 + races)
    cancel_committed: set[str] = set()
    cancel_refused: set[str] = set()
    async with running(tmp_path, hold_completion=True, max_active_exports_per_user=races,
                       worker_concurrency=USERS * IN_FLIGHT, store_check_seconds=0.5) as app:
        services, gate = app.runtime.services, app.completions
        users = []
        for n in range(USERS):
            user_id, token = await app.user(f"racer{n}@example.com")
            project_id, _ = await app.project(token, images=1)
            client_log = ClientLog()
            app.sockets.append(client_log.client)
            await client_log.client.connect(app.url, auth={"token": token}, transports=["websocket"],
                                            wait_timeout=10)
            users.append((user_id, project_id, client_log))
        numbers = iter(range(races))
        jobs: list[tuple[str, ClientLog]] = []

        async def race(user_id: str, project_id: str, client_log: ClientLog, number: int) -> None:
            job, _ = await services.start_export(user_id, project_id, RACE)
            jobs.append((job.id, client_log))
            await gate.reached(job.id, timeout=120)  # the ZIP is written; completion is next

            release_first = number % 2 == 1
            delay = rng.random() * (HEAD_START_SECONDS if release_first else JITTER_SECONDS)

            async def cancel() -> None:
                await asyncio.sleep(delay)
                try:
                    row = await services.cancel(user_id, project_id, job.id)
                except ExportNotCancellable:
                    cancel_refused.add(job.id)
                else:
                    assert row.status == "cancelled", row.status
                    cancel_committed.add(job.id)

            async def release() -> None:
                await asyncio.sleep(rng.random() * JITTER_SECONDS)
                gate.release(job.id)

            first, second = (release(), cancel()) if release_first else (cancel(), release())
            await asyncio.gather(first, second)
            await client_log.ended(job.id)

        async def racer(user_id: str, project_id: str, client_log: ClientLog) -> None:
            for number in numbers:  # shared: the users take the next race as they free up
                await race(user_id, project_id, client_log, number)

        await asyncio.gather(*(racer(*user) for user in users for _ in range(IN_FLIGHT)))
        await app.settled(jobs[-1][0])
        for job_id, _ in jobs:
            await app.settled(job_id)

        storage = app.runtime.storage
        folders: dict[str, list[str]] = defaultdict(list)
        for name in storage.attempt_folders():
            folders[name.split(".", 1)[0]].append(name)
        outcomes = {"completed": 0, "cancelled": 0}
        owner: dict[str, list[ClientLog]] = {}
        for _, _, client_log in users:
            for job_id in client_log.by_job:
                owner.setdefault(job_id, []).append(client_log)
        for job_id, own_log in jobs:
            job = await app.stored_job(job_id)
            stored = await app.stored_log(job_id)
            assert_log_is_sound(stored)  # seq 1..n, one terminal event, and it is the last
            assert stored[-1]["type"] == f"export:{job.status}", (job_id, job.status, stored[-1]["type"])
            outcomes[job.status] += 1
            if job_id in cancel_committed:  # a committed cancel is never followed by a completion
                assert job.status == "cancelled" and "export:completed" not in [e["type"] for e in stored]
            else:
                assert job_id in cancel_refused and job.status == "completed", (job_id, job.status)
            if job.status == "cancelled":  # never a ZIP beside a cancelled status
                assert job.file_path is None and folders.get(job_id, []) == [], (job_id, folders.get(job_id))
            else:
                assert folders[job_id] == [f"{job_id}.{job.attempt}"], folders[job_id]
                assert storage.path(job.file_path).is_file()
            receivers = owner.get(job_id, [])
            assert receivers == [own_log], f"{job_id} reached {len(receivers)} clients, or not its user's"
            received = own_log.by_job[job_id]  # in seq order, no gap, no duplicate: exactly the stored log
            assert received == stored, (job_id, [e["seq"] for e in received], [e["seq"] for e in stored])
    assert len(jobs) == races
    assert outcomes["completed"] > 0 and outcomes["cancelled"] > 0, outcomes  # both orders were met
