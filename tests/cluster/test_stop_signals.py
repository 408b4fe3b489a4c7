"""A stop reaches the worker process that runs the export at once, by the one LISTEN connection of its worker.

The worker's main process listens and hands each stop to its prefork children; a child forked later, in place
of one that died, hears them from its start. The store check stays the fallback, and is kept out of the way
here (`signals_only_cluster`): without the signal, the exports below would run on for about ten seconds.
"""

from __future__ import annotations

import os
import signal

from tests.cluster.support import Cluster, Served, children, settled, start_export, status, stored_log
from tests.conftest import eventually

STOPPED_WITHIN = 5.0  #: seconds; the pipeline has about 10 s left to run when the cancel is answered


async def _cancel_a_running_export(cluster: Cluster, a: Served, b: Served, token: str, project_id: str) -> None:
    async with b.client(token) as via_b, a.client(token) as via_a:
        job_id = await start_export(via_b, project_id)

        async def running() -> bool:
            return (await status(via_b, project_id, job_id))["status"] == "processing" and bool(
                cluster.attempt_folders(job_id))
        await eventually(running, timeout=30, message="the export to run in a worker")

        cancelled = await via_a.post(f"/api/projects/{project_id}/export/{job_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        await eventually(lambda: cluster.attempt_folders(job_id) == [], timeout=STOPPED_WITHIN,
                         message="the worker to stop the export and delete its folder")
        final = await settled(via_a, project_id, job_id)
        log = await stored_log(via_a, project_id, job_id)
    assert final["status"] == "cancelled"
    assert [event["type"] for event in log][-1] == "export:cancelled"
    assert "export:completed" not in [event["type"] for event in log]


async def test_a_cancel_stops_the_export_in_its_prefork_child_and_in_one_forked_after_its_predecessor_was_killed(
        signals_only_cluster: Cluster):
    cluster = signals_only_cluster
    a, b = cluster.node(0), cluster.node(1)
    _, token = await a.user("stop-signal@example.com")
    project_id, _ = await a.project(token, images=20)
    await _cancel_a_running_export(cluster, a, b, token, project_id)

    first = {}
    for worker in cluster.workers:
        await eventually(lambda worker=worker: children(worker.pid), timeout=30, message="the prefork children")
        first[worker.pid] = set(children(worker.pid))
        for child in first[worker.pid]:
            os.kill(child, signal.SIGKILL)
    for worker in cluster.workers:
        await eventually(lambda worker=worker: children(worker.pid) and not set(children(worker.pid)) & first[worker.pid],
                         timeout=30, message="the worker to fork a new child")
    await _cancel_a_running_export(cluster, a, b, token, project_id)
