"""A cancel through one API node stops an export that a worker process runs, and every node tells the same story."""

from __future__ import annotations

import asyncio
import random

import pytest

from tests.cluster.support import Cluster, assert_log_is_sound, settled, start_export, stored_log
from tests.conftest import eventually


async def test_a_cancel_through_node_a_stops_an_export_started_through_node_b_on_worker_2_and_both_nodes_tell_it_alike(
        cluster: Cluster):
    a, b = cluster.node(0), cluster.node(1)
    _, token = await a.user("across-nodes@example.com")
    project_id, _ = await a.project(token, images=3)
    socket_a, on_a = await a.socket(token)
    socket_b, on_b = await b.socket(token)
    blockers = []
    try:
        await cluster.arm("item", after_items=2)
        blockers = await cluster.occupy_all_but(cluster.workers[1])
        async with b.client(token) as via_b:
            job_id = await start_export(via_b, project_id)
        await cluster.held(job_id, "item")  # running in a worker process, mid-export
        cluster.disarm("item")
        assert cluster.holder(job_id) == cluster.workers[1]  # the process that runs it is worker 2's

        async with a.client(token) as via_a:
            cancelled = await via_a.post(f"/api/projects/{project_id}/export/{job_id}/cancel")
            assert cancelled.status_code == 200, cancelled.text
            await cluster.release(job_id, "item")
            final = await settled(via_a, project_id, job_id)
            log = await stored_log(via_a, project_id, job_id)

        assert final["status"] == "cancelled" and final["reason"] == "user_cancelled"
        assert_log_is_sound(log)
        assert "export:completed" not in [e["type"] for e in log]
        await eventually(lambda: len([p for _, p in on_a if p["jobId"] == job_id]) == len(log)
                         and len([p for _, p in on_b if p["jobId"] == job_id]) == len(log),
                         message="both nodes' sockets to have the whole log")
        assert [p for _, p in on_a if p["jobId"] == job_id] == log
        assert [p for _, p in on_b if p["jobId"] == job_id] == log
        await eventually(lambda: cluster.zips(job_id) == [] and cluster.attempt_folders(job_id) == [],
                         message="the worker to delete its scratch folder")
        for node in (a, b):
            async with node.client(token) as http:
                download = await http.get(f"/api/projects/{project_id}/export/{job_id}/download")
                assert download.status_code == 410, download.text
    finally:
        await cluster.let_go(blockers)
        await socket_a.disconnect()
        await socket_b.disconnect()


async def _race(cluster: Cluster, rounds: int, seed: int) -> dict[str, int]:
    """Hold each job in its worker just before completion; cancel through node A and release, in both orders."""
    a, b = cluster.node(0), cluster.node(1)
    _, token = await a.user(f"race-{seed}-{rounds}@example.com")
    project_id, _ = await a.project(token, images=1)
    rng = random.Random(seed)
    outcomes = {"completed": 0, "cancelled": 0}
    await cluster.arm("before_complete")
    async with a.client(token) as via_a, b.client(token) as via_b:
        for round_ in range(rounds):
            job_id = await start_export(via_b, project_id)
            await cluster.held(job_id, "before_complete")

            async def cancel(job_id=job_id):
                await asyncio.sleep(rng.random() * 0.003)
                response = await via_a.post(f"/api/projects/{project_id}/export/{job_id}/cancel")
                assert response.status_code in (200, 409), response.text

            async def release(job_id=job_id):
                await asyncio.sleep(rng.random() * 0.003)
                await cluster.release(job_id, "before_complete")

            cancel_first = round_ % 2 == 0
            await asyncio.gather(*((cancel(), release()) if cancel_first else (release(), cancel())))
            final = await settled(via_a, project_id, job_id)
            outcomes[final["status"]] += 1
            log = await stored_log(via_a, project_id, job_id)
            assert_log_is_sound(log)
            assert log[-1]["type"] == f"export:{final['status']}"
            if final["status"] == "cancelled":
                await eventually(lambda job_id=job_id: cluster.zips(job_id) == [],
                                 message="no ZIP beside a cancelled status")
                download = await via_b.get(f"/api/projects/{project_id}/export/{job_id}/download")
                assert download.status_code == 410
            else:
                assert len(cluster.zips(job_id)) == 1
    return outcomes


async def test_cancel_and_completion_racing_across_processes_leave_one_outcome_each_time(cluster: Cluster):
    outcomes = await _race(cluster, rounds=16, seed=20261130)
    assert sum(outcomes.values()) == 16


@pytest.mark.stress
async def test_cancel_and_completion_racing_across_processes_200_times(cluster: Cluster):
    outcomes = await _race(cluster, rounds=200, seed=20261131)
    assert outcomes["completed"] > 0 and outcomes["cancelled"] > 0, outcomes
