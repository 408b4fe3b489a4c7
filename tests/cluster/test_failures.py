"""What a cluster does when one of its processes, or Redis, goes away in the middle of an export."""

from __future__ import annotations

import os
import signal

import httpx
import pytest

from tests.cluster.support import Cluster, assert_log_is_sound, metric, settled, start_export, stored_log
from tests.conftest import eventually


async def test_a_worker_killed_mid_export_loses_its_lease_and_the_other_worker_completes_attempt_two(
        fresh_cluster: Cluster):
    cluster = fresh_cluster
    a = cluster.node(0)
    _, token = await a.user("killed-worker@example.com")
    project_id, _ = await a.project(token, images=3)
    await cluster.arm("item", after_items=2)
    async with a.client(token) as http:
        job_id = await start_export(http, project_id)
        await cluster.held(job_id, "item")
        cluster.disarm("item")  # attempt 2 runs straight through
        victim = cluster.holder(job_id)
        assert [path.name for path in cluster.attempt_folders(job_id)] == [f"{job_id}.1"]

        cluster.kill(victim)
        final = await settled(http, project_id, job_id, timeout=60)
        log = await stored_log(http, project_id, job_id)

    assert final["status"] == "completed", (final, cluster.logs())
    assert not victim.alive()
    assert_log_is_sound(log)
    types = [(e["type"], e.get("attempt")) for e in log]
    assert ("export:queued", 1) in types  # the reaper handed it back after the lease expired
    second_start = types.index(("export:started", 2))
    assert "export:progress" in [t for t, _ in types[second_start:]]  # attempt 2 reported progress
    assert [zip_.parent.name for zip_ in cluster.zips(job_id)].count(f"{job_id}.2") == 1
    await eventually(lambda: [path.name for path in cluster.attempt_folders(job_id)] == [f"{job_id}.2"],
                     timeout=15, message="the janitor to delete attempt 1's half-written folder")
    assert len(cluster.zips(job_id)) == 1


@pytest.mark.parametrize("to", ["main process", "every process"])
async def test_a_worker_told_to_stop_hands_its_export_back_at_once_and_the_other_worker_completes_it(
        long_lease_cluster: Cluster, to: str):
    cluster = long_lease_cluster  # leases of 300 s: only the stopping worker itself can hand the job on in time
    a = cluster.node(0)
    _, token = await a.user("stopped-worker@example.com")
    project_id, _ = await a.project(token, images=3)
    await cluster.arm("item", after_items=1)
    async with a.client(token) as http:
        job_id = await start_export(http, project_id)
        await cluster.held(job_id, "item")
        cluster.disarm("item")
        victim = cluster.holder(job_id)

        if to == "main process":  # as `kill` or a container's stop does
            os.kill(victim.pid, signal.SIGTERM)
        else:  # as systemd does: the prefork children hear it too, before their parent forwards it
            os.killpg(victim.pid, signal.SIGTERM)
        await cluster.release(job_id, "item")
        final = await settled(http, project_id, job_id, timeout=60)
        log = await stored_log(http, project_id, job_id)

    assert final["status"] == "completed", (final, cluster.logs())
    assert_log_is_sound(log)
    types = [(e["type"], e.get("attempt")) for e in log]
    assert types.index(("export:queued", 1)) < types.index(("export:started", 2)), types  # given back, not finished
    assert types[-1] == ("export:completed", None)
    await eventually(lambda: not victim.alive(), timeout=30, message="the stopped worker to exit")
    assert [zip_.parent.name for zip_ in cluster.zips(job_id)] == [f"{job_id}.2"]
    assert [path.name for path in cluster.attempt_folders(job_id)] == [f"{job_id}.2"]


async def test_an_api_node_killed_leaves_the_other_nodes_clients_whole_and_sync_fills_what_was_missed(
        fresh_cluster: Cluster):
    cluster = fresh_cluster
    a, b = cluster.node(0), cluster.node(1)
    _, token = await a.user("killed-node@example.com")
    project_id, _ = await a.project(token, images=2)
    socket_a, on_a = await a.socket(token)
    socket_b, on_b = await b.socket(token)
    try:
        await cluster.arm("item", after_items=1)
        async with a.client(token) as http:
            job_id = await start_export(http, project_id)
            await cluster.held(job_id, "item")
            cluster.disarm("item")
            await eventually(lambda: len(on_b) >= 2, message="node B's socket to hear the start")
            seen_on_b = max(p["seq"] for _, p in on_b if p["jobId"] == job_id)

            cluster.kill(cluster.api[1])
            await eventually(lambda: not socket_b.connected, message="node B's socket to drop")
            await cluster.release(job_id, "item")
            final = await settled(http, project_id, job_id)
            log = await stored_log(http, project_id, job_id)

        assert final["status"] == "completed"
        assert_log_is_sound(log)
        await eventually(lambda: len([p for _, p in on_a if p["jobId"] == job_id]) == len(log),
                         message="node A's socket to receive the whole log")
        assert [p for _, p in on_a if p["jobId"] == job_id] == log

        rejoined, _ = await a.socket(token)  # B's client, reconnecting to A
        try:
            answer = await rejoined.call("export:sync", {"jobId": job_id, "afterSeq": seen_on_b}, timeout=10)
        finally:
            await rejoined.disconnect()
        assert answer["success"] is True
        assert answer["events"] == log[seen_on_b:]
        assert answer["job"]["status"] == "completed"
    finally:
        await socket_a.disconnect()


async def test_redis_restarted_mid_export_loses_nothing_and_a_job_queued_while_it_was_down_still_runs(
        fresh_cluster: Cluster):
    cluster = fresh_cluster
    a, b = cluster.node(0), cluster.node(1)
    _, token = await a.user("redis-restart@example.com")
    project_id, _ = await a.project(token, images=2)
    socket_b, on_b = await b.socket(token)
    try:
        await cluster.arm("item", after_items=1)
        async with a.client(token) as http:
            running = await start_export(http, project_id)
            await cluster.held(running, "item")
            cluster.disarm("item")
            await cluster.release(running, "item")  # the hold lives in Redis: let go of it before Redis goes

            cluster.redis.down()
            cluster.redis.up()
            first = await settled(http, project_id, running, timeout=60)
            first_log = await stored_log(http, project_id, running)

            cluster.redis.down()
            try:
                failures = await metric(a, "exportd_broker_send_failures")
                queued = await start_export(http, project_id)  # committed; its message cannot reach the broker
                await eventually(lambda: _more(a, failures), timeout=30, message="the broker to refuse the task")
            finally:
                cluster.redis.up()
            second = await settled(http, project_id, queued, timeout=60)
            second_log = await stored_log(http, project_id, queued)

        assert first["status"] == "completed" and second["status"] == "completed", cluster.logs()
        for job_id, log in ((running, first_log), (queued, second_log)):
            assert_log_is_sound(log)
            await eventually(lambda job_id=job_id, log=log: [p for _, p in on_b if p["jobId"] == job_id] == log,
                             message="node B's socket to end with the whole log")
    finally:
        await socket_b.disconnect()


async def _more(node, before: float) -> bool:
    return await metric(node, "exportd_broker_send_failures") > before


async def test_the_cluster_answers_health_and_readiness_on_every_node(cluster: Cluster):
    for node in cluster.api:
        async with httpx.AsyncClient(base_url=node.url, timeout=10) as http:
            ready = (await http.get("/api/readyz")).json()
        assert ready["status"] == "ready" and ready["engine"] == "celery" and ready["listening"] is True
    leaders = []
    for node in cluster.api:
        async with httpx.AsyncClient(base_url=node.url, timeout=10) as http:
            leaders.append((await http.get("/api/readyz")).json()["leader"])
    assert leaders.count(True) == 1  # the reaper and the pending sweep run once per cluster
