"""Socket.IO, end to end: what a browser tab receives, recovers, sends, and is refused (DESIGN §2, §7)."""

from __future__ import annotations

import asyncio
import time

import pytest
import socketio

from tests.acceptance.support import (
    SECRET,
    TERMINAL,
    access_token,
    assert_log_is_sound,
    log,
    running,
    start,
    status,
    until_status,
)
from tests.conftest import eventually


async def test_a_socket_receives_exactly_the_stored_log_of_a_whole_export_in_order(tmp_path):
    async with running(tmp_path, items=1) as app:
        _, token = await app.user("ada@example.com")
        project_id, _ = await app.project(token, images=2)
        sock = await app.socket(token)
        async with app.client(token) as http:
            job = await start(http, project_id)
            await app.items.reached(job["id"])  # held after one item, so a progress event is written
            await sock.wait_for(job["id"], "export:progress")
            app.items.release(job["id"])
            await sock.wait_terminal(job["id"])
            await app.settled(job["id"])
            stored = await log(http, project_id, job["id"])

    assert_log_is_sound(stored)
    types = [event["type"] for event in stored]
    assert types[0] == "export:queued" and types[1] == "export:started" and types[-1] == "export:completed"
    assert "export:progress" in types
    assert sock.events(job["id"]) == types  # event names are the payloads' types
    assert sock.payloads(job["id"]) == stored  # payload for payload, in order
    for payload in sock.payloads(job["id"]):
        assert payload["jobId"] == job["id"] and payload["projectId"] == project_id
        assert payload["userId"] == job["userId"] and payload["timestamp"].endswith("Z")
    progress = [event["progress"] for event in stored if event["type"] == "export:progress"]
    assert progress == sorted(progress) and all(0 < value <= 100 for value in progress)


async def test_a_socket_that_was_cut_off_mid_export_recovers_exactly_the_missed_events_with_sync(tmp_path):
    async with running(tmp_path, items=1) as app:
        _, token = await app.user("ada@example.com")
        project_id, _ = await app.project(token, images=2)
        first = await app.socket(token)
        async with app.client(token) as http:
            job_id = (await start(http, project_id))["id"]
            await app.items.reached(job_id)  # the pipeline is held after its first item

            async def caught_up():  # nothing more can happen until the gate opens
                stored = await log(http, project_id, job_id)
                held = stored[-1]["type"] == "export:progress" and first.payloads(job_id) == stored
                return stored if held else None
            seen = await eventually(caught_up, message="the socket to hold every event so far")

            sid = first.client.get_sid("/")
            await app.runtime.sio.disconnect(sid)  # the server drops the connection
            await eventually(lambda: not first.client.connected, message="the client to notice the disconnect")
            app.items.release(job_id)
            await until_status(http, project_id, job_id, "completed")
            await app.settled(job_id)
            stored = await log(http, project_id, job_id)

            second = await app.socket(token)
            after_seq = seen[-1]["seq"]
            ack = await second.call("export:sync", {"jobId": job_id, "afterSeq": after_seq})

    assert first.payloads(job_id) == seen  # nothing reached the dropped socket
    assert ack["success"] is True and ack["job"]["status"] == "completed" and ack["job"]["id"] == job_id
    missed = [event["seq"] for event in stored if event["seq"] > after_seq]
    assert missed, "the job made progress while the socket was away"
    assert [event["seq"] for event in ack["events"]] == missed
    assert ack["events"] == stored[after_seq:]
    assert seen + ack["events"] == stored
    assert_log_is_sound(seen + ack["events"])


async def test_cancel_over_the_socket_is_acked_and_announced_within_100_ms(tmp_path):
    async with running(tmp_path, items=1) as app:
        user_id, token = await app.user("ada@example.com")
        project_id, _ = await app.project(token, images=2)
        sock = await app.socket(token)
        async with app.client(token) as http:
            job_id = (await start(http, project_id))["id"]
            await app.items.reached(job_id)

            answered: asyncio.Future = asyncio.get_running_loop().create_future()

            def on_ack(answer):  # stamped when the ack packet is handled, not when the caller resumes
                answered.set_result((answer, time.monotonic()))

            sent = time.monotonic()
            await sock.client.emit("export:cancel", {"jobId": job_id, "projectId": project_id}, callback=on_ack)
            ack, acked = await asyncio.wait_for(answered, 5)
            event, arrived = await sock.wait_for(job_id, "export:cancelled", timeout=5)  # stamped on receipt

            app.items.release(job_id)
            await app.settled(job_id)
            stored = await log(http, project_id, job_id)
            final = await status(http, project_id, job_id)

    assert ack["success"] is True and ack["status"] == "cancelled" and ack["cancelledAt"]
    assert ack["reason"] == "user_cancelled" and ack["previousStatus"] == "processing"
    assert sent < acked and sent < arrived  # both stamps are of this cancel, not of earlier traffic
    assert acked - sent < 0.1, f"the ack came {1000 * (acked - sent):.0f} ms after the cancel was sent"
    assert arrived - sent < 0.1, f"export:cancelled came {1000 * (arrived - sent):.0f} ms after the cancel was sent"
    assert event["jobId"] == job_id and event["previousStatus"] == "processing"
    assert event["cancelledAt"] == ack["cancelledAt"] and event["reason"] == "user_cancelled"
    assert event["cancelledBy"] == user_id and event["status"] == "cancelled"
    assert final["status"] == "cancelled" and final["cancelledAt"] == ack["cancelledAt"]
    assert_log_is_sound(stored)
    assert stored[-1]["type"] == "export:cancelled"
    assert sock.payloads(job_id) == stored


def malformed(job_id: str) -> dict[str, tuple[str, object]]:
    """Messages a broken or hostile client might send, by name."""
    return {
        "sync with a string": ("export:sync", "not an object"),
        "sync without data": ("export:sync", None),
        "sync with a list": ("export:sync", ["a", "list"]),
        "sync without jobId": ("export:sync", {"afterSeq": 0}),
        "sync with a negative afterSeq": ("export:sync", {"jobId": job_id, "afterSeq": -1}),
        "sync with a string afterSeq": ("export:sync", {"jobId": job_id, "afterSeq": "1"}),
        "cancel with nothing": ("export:cancel", {}),
        "cancel with wrong types": ("export:cancel", {"jobId": 7, "projectId": None}),
        "an unknown event": ("export:unknown", {"jobId": job_id}),
    }


async def test_malformed_socket_messages_get_an_error_ack_and_the_connection_stays_usable(tmp_path):
    async with running(tmp_path) as app:
        token, project_id, job_id, stored = await app.completed_export()
        sock = await app.socket(token)

        acks = {}
        for name, (event, data) in malformed(job_id).items():
            acks[name] = await sock.call(event, data)
            assert sock.client.connected, f"{name} dropped the connection"
        valid = await sock.call("export:sync", {"jobId": job_id, "afterSeq": 0})
        beyond_any_seq = await sock.call("export:sync", {"jobId": job_id, "afterSeq": 2**64})
        too_late = await sock.call("export:cancel", {"jobId": job_id, "projectId": project_id})

    for name, ack in acks.items():
        assert ack["success"] is False and ack["code"] == "BAD_REQUEST", (name, ack)
        assert isinstance(ack["error"], str) and ack["error"], (name, ack)
    assert "jobId" in acks["sync without jobId"]["error"]
    assert "afterSeq" in acks["sync with a negative afterSeq"]["error"]
    assert valid["success"] is True and valid["events"] == stored
    assert beyond_any_seq["success"] is True and beyond_any_seq["events"] == []
    assert too_late["success"] is False and too_late["code"] == "CONFLICT"  # the HTTP cancel's 409 body
    assert too_late["job"]["status"] == "completed"


async def test_a_socket_without_a_valid_access_token_is_refused(tmp_path):
    async with running(tmp_path) as app:
        user_id, token = await app.user("ada@example.com")
        project_id, _ = await app.project(token, images=1)
        async with app.client(token) as http:
            job_id = (await start(http, project_id))["id"]
            await until_status(http, project_id, job_id, "completed")
            download_token = (await http.post(f"/api/projects/{project_id}/export/{job_id}/download-token")).json()
        refused = {
            "no token": None,
            "empty token": "",
            "garbage": "not-a-jwt",
            "forged": access_token(user_id, secret="another-secret-with-enough-entropy-0123456789"),
            "expired": access_token(user_id, expires_in=-60),
            "download token": download_token["token"],
            "unknown user": access_token("00000000-0000-0000-0000-000000000000"),
        }
        for name, bad in refused.items():
            with pytest.raises(socketio.exceptions.ConnectionError):
                await app.socket(bad)
                pytest.fail(f"a socket with {name} was accepted")
        genuine = await app.socket(access_token(user_id, secret=SECRET))  # the same claims, properly signed
        assert genuine.client.connected


async def test_a_socket_authenticated_by_the_access_token_cookie_receives_its_users_events(tmp_path):
    async with running(tmp_path) as app:
        _, token = await app.user("ada@example.com")
        project_id, _ = await app.project(token, images=1)
        sock = await app.socket(headers={"Cookie": f"theme=dark; access_token={token}"})
        async with app.client(token) as http:
            job_id = (await start(http, project_id))["id"]
            terminal = await sock.wait_terminal(job_id)
            await app.settled(job_id)
            stored = await log(http, project_id, job_id)
        ack = await sock.call("export:sync", {"jobId": job_id, "afterSeq": 0})

    assert terminal["type"] == "export:completed"
    assert sock.payloads(job_id) == stored
    assert ack["success"] is True and ack["events"] == stored


async def test_another_users_socket_never_receives_events_of_a_job_that_is_not_theirs(tmp_path):
    async with running(tmp_path) as app:
        _, ada_token = await app.user("ada@example.com")
        bob_id, bob_token = await app.user("bob@example.com")
        ada_project, _ = await app.project(ada_token, images=1)
        bob_project, _ = await app.project(bob_token, images=1)
        ada = await app.socket(ada_token)
        bob = await app.socket(bob_token)
        async with app.client(ada_token) as ada_http, app.client(bob_token) as bob_http:
            ada_job = (await start(ada_http, ada_project))["id"]
            await ada.wait_terminal(ada_job)
            await app.settled(ada_job)
            # bob's own export comes after ada's in the one ordered relay: once bob hears its end,
            # anything of ada's that was going to reach bob would have reached him already
            bob_job = (await start(bob_http, bob_project))["id"]
            await bob.wait_terminal(bob_job)
            await app.settled(bob_job)
            ada_job_state = await status(ada_http, ada_project, ada_job)

            sync = await bob.call("export:sync", {"jobId": ada_job, "afterSeq": 0})
            cancel = await bob.call("export:cancel", {"jobId": ada_job, "projectId": ada_project})
            cancel_in_own_project = await bob.call("export:cancel", {"jobId": ada_job, "projectId": bob_project})
            after = await status(ada_http, ada_project, ada_job)

    assert ada.events(ada_job) and ada.events(ada_job)[-1] == "export:completed"
    assert bob.events(ada_job) == []
    assert {payload["userId"] for payload in bob.payloads()} == {bob_id}
    assert bob.events(bob_job)[-1] in TERMINAL
    for ack in (sync, cancel, cancel_in_own_project):
        assert ack["success"] is False and ack["code"] == "NOT_FOUND", ack
    assert after == ada_job_state
