"""The acceptance scenarios, against the cluster: requests through either API node, exports in worker processes."""

from __future__ import annotations

import asyncio

from tests.cluster.support import Cluster, assert_log_is_sound, settled, start_export, stored_log
from tests.conftest import eventually


async def test_a_queued_export_cancelled_while_every_worker_is_busy_never_starts(cluster: Cluster):
    a, b = cluster.node(0), cluster.node(1)
    await cluster.arm("item", after_items=1)
    busy = []
    for number in range(2):  # one export per worker (concurrency 1 each), held mid-export
        _, token = await a.user(f"busy-{number}@example.com")
        project_id, _ = await a.project(token, images=2)
        async with a.client(token) as http:
            busy.append((token, project_id, await start_export(http, project_id)))
    for _, _, job_id in busy:
        await cluster.held(job_id, "item")
    cluster.disarm("item")

    _, token = await a.user("queued@example.com")
    project_id, _ = await a.project(token, images=1)
    async with b.client(token) as via_b, a.client(token) as via_a:
        job_id = await start_export(via_b, project_id)
        cancelled = await via_a.post(f"/api/projects/{project_id}/export/{job_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        for other_token, other_project, other_job in busy:
            await cluster.release(other_job, "item")
            async with a.client(other_token) as http:
                assert (await settled(http, other_project, other_job))["status"] == "completed"
        final = await settled(via_b, project_id, job_id)
        log = await stored_log(via_b, project_id, job_id)

    assert final["status"] == "cancelled" and final["startedAt"] is None
    assert [e["type"] for e in log] == ["export:queued", "export:cancelled"]  # a late delivery claimed nothing
    assert cluster.attempt_folders(job_id) == []


async def test_five_concurrent_cancels_through_both_nodes_agree_on_one_cancel(cluster: Cluster):
    a, b = cluster.node(0), cluster.node(1)
    _, token = await a.user("five-cancels@example.com")
    project_id, _ = await a.project(token, images=2)
    await cluster.arm("item", after_items=1)
    async with a.client(token) as via_a, b.client(token) as via_b:
        job_id = await start_export(via_a, project_id)
        await cluster.held(job_id, "item")
        cluster.disarm("item")
        answers = await asyncio.gather(*(
            http.post(f"/api/projects/{project_id}/export/{job_id}/cancel")
            for http in (via_a, via_b, via_a, via_b, via_a)))
        await cluster.release(job_id, "item")
        final = await settled(via_a, project_id, job_id)
        log = await stored_log(via_b, project_id, job_id)

    assert [answer.status_code for answer in answers] == [200] * 5
    assert {answer.json()["cancelledAt"] for answer in answers} == {final["cancelledAt"]}
    assert_log_is_sound(log)
    assert [e["type"] for e in log].count("export:cancelled") == 1


async def test_deleting_the_project_stops_its_export_in_the_worker_with_a_system_cancel(cluster: Cluster):
    a, b = cluster.node(0), cluster.node(1)
    owner_id, token = await a.user("deleting-owner@example.com")
    project_id, _ = await a.project(token, images=3)
    socket, received = await b.socket(token)
    try:
        await cluster.arm("item", after_items=1)
        async with a.client(token) as http:
            job_id = await start_export(http, project_id)
            await cluster.held(job_id, "item")
            cluster.disarm("item")
            deleted = await http.delete(f"/api/projects/{project_id}")
            assert deleted.status_code in (200, 204), deleted.text
            await cluster.release(job_id, "item")
        await eventually(lambda: any(event == "export:cancelled" for event, _ in received),
                         message="node B's socket to hear the cancel")
        await eventually(lambda: cluster.attempt_folders(job_id) == [],
                         message="the worker to stop and delete its folder")
        cancel = next(payload for event, payload in received if event == "export:cancelled")
        assert cancel["reason"] == "system_cancelled" and cancel["cancelledBy"] == owner_id
        assert "export:completed" not in [event for event, _ in received]
    finally:
        await socket.disconnect()


async def test_revoking_a_share_stops_that_users_export_in_the_worker(cluster: Cluster):
    a, b = cluster.node(0), cluster.node(1)
    _, owner_token = await a.user("sharing-owner@example.com")
    guest_id, guest_token = await a.user("guest@example.com")
    project_id, _ = await a.project(owner_token, images=3)
    async with a.client(owner_token) as owner:
        shared = await owner.post(f"/api/projects/{project_id}/shares", json={"email": "guest@example.com"})
        assert shared.status_code in (200, 201), shared.text
        await cluster.arm("item", after_items=1)
        async with b.client(guest_token) as guest:
            job_id = await start_export(guest, project_id)
            await cluster.held(job_id, "item")
            cluster.disarm("item")
            revoked = await owner.delete(f"/api/projects/{project_id}/shares/{guest_id}")
            assert revoked.status_code in (200, 204), revoked.text
            await cluster.release(job_id, "item")
            await eventually(lambda: cluster.attempt_folders(job_id) == [],
                             message="the worker to stop and delete its folder")
            gone = await guest.get(f"/api/projects/{project_id}/export/{job_id}/status")
    assert gone.status_code == 404  # the guest no longer sees the project, nor its jobs
    assert cluster.zips(job_id) == []


async def test_another_users_cancel_through_the_other_node_is_404_and_leaves_the_export_running(cluster: Cluster):
    a, b = cluster.node(0), cluster.node(1)
    _, token = await a.user("owner-of-running@example.com")
    _, stranger = await b.user("stranger@example.com")
    project_id, _ = await a.project(token, images=2)
    await cluster.arm("item", after_items=1)
    async with a.client(token) as http, b.client(stranger) as other:
        job_id = await start_export(http, project_id)
        await cluster.held(job_id, "item")
        cluster.disarm("item")
        refused = await other.post(f"/api/projects/{project_id}/export/{job_id}/cancel")
        await cluster.release(job_id, "item")
        final = await settled(http, project_id, job_id)
    assert refused.status_code == 404 and refused.json()["code"] == "NOT_FOUND"
    assert final["status"] == "completed"


async def test_an_export_past_its_time_limit_is_cancelled_in_its_worker_with_reason_timeout(
        short_limit_cluster: Cluster):
    cluster = short_limit_cluster
    a, b = cluster.node(0), cluster.node(1)
    _, token = await a.user("slow@example.com")
    project_id, _ = await a.project(token, images=2)
    socket, received = await b.socket(token)
    try:
        await cluster.arm("item", after_items=1)
        async with a.client(token) as http:
            job_id = await start_export(http, project_id)
            await cluster.held(job_id, "item")  # it stays mid-export past its 3 s
            cluster.disarm("item")
            final = await settled(http, project_id, job_id, timeout=30)
            await cluster.release(job_id, "item")
            log = await stored_log(http, project_id, job_id)
        assert final["status"] == "cancelled" and final["reason"] == "timeout"
        assert_log_is_sound(log)
        await eventually(lambda: cluster.attempt_folders(job_id) == [],
                         message="the worker to stop and delete its folder")
        await eventually(lambda: [p for _, p in received if p["jobId"] == job_id] == log,
                         message="node B's socket to have the whole log")
    finally:
        await socket.disconnect()
