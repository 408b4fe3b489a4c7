"""Socket.IO under hostile and broken clients: every call answered, no crash, the server serves on (DESIGN §2).

Malformed, wrong-typed, oversized and out-of-order messages on every handler,
before and after authentication, from python-socketio's client and from raw
Engine.IO frames. A call with an acknowledgement always gets one: the error
shape for anything wrong. The connection stays, except for a frame over the
transport's size limit, which closes that one connection and no other.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from typing import Any

import aiohttp
import pytest
import socketio

from exportd.realtime.sio import MAX_MESSAGE_BYTES
from tests.acceptance.support import assert_log_is_sound, log, running, start, until_status
from tests.conftest import eventually

EVENTS = ("export:sync", "export:cancel", "export:unknown", "connect", "disconnect", "", "x" * 5000,
          "export:sync ", "EXPORT:SYNC", "message")
ERROR_CODES = {"BAD_REQUEST", "NOT_FOUND"}


def random_value(rng: random.Random, depth: int = 0) -> Any:
    """A JSON value of any kind, biased toward the shapes and edges the handlers parse."""
    kinds = ["none", "bool", "int", "float", "str", "list", "dict", "message"]
    kind = rng.choice(kinds if depth < 3 else kinds[:5])
    if kind == "none":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.choice([0, -1, 1, 2**31, 2**63, 2**64 + 1, -(2**70), rng.randint(-10**6, 10**6)])
    if kind == "float":
        return rng.choice([0.5, -0.0, 1e308, -1e-308, 3.0, rng.uniform(-1e9, 1e9)])
    if kind == "str":
        return rng.choice(["", "a", "\x00", "\u202e\ufeff", "🧫" * 100, "x" * rng.randint(0, 70_000),
                           "00000000-0000-0000-0000-000000000000", "' OR 1=1 --", "../../etc/passwd"])
    if kind == "list":
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if kind == "dict":
        return {rng.choice(["jobId", "projectId", "afterSeq", "__proto__", "x" * 300, ""]): random_value(rng, depth + 1)
                for _ in range(rng.randint(0, 4))}
    return {"jobId": random_value(rng, 3), "projectId": random_value(rng, 3), "afterSeq": random_value(rng, 3)}


def corpus(seed: int, count: int) -> list[tuple[str, tuple]]:
    """(event, arguments): named cases first, then `count` random ones."""
    named = [
        ("export:sync", ()), ("export:cancel", ()), ("export:sync", (None,)), ("export:cancel", ("text",)),
        ("export:sync", ({"jobId": "a"}, {"jobId": "b"})), ("export:cancel", ({"jobId": "a", "projectId": "b"}, 1)),
        ("export:sync", ({"jobId": "a", "afterSeq": 1.5},)), ("export:sync", ({"jobId": "a", "afterSeq": True},)),
        ("export:sync", ({"jobId": ["a"]},)), ("export:cancel", ({"jobId": {"$ne": None}, "projectId": "p"},)),
        ("export:sync", (b"\x00\x01binary",)), ("export:cancel", ({"jobId": b"\x00", "projectId": b"\x01"},)),
        ("export:sync", ({"jobId": "x" * (MAX_MESSAGE_BYTES - 1000)},)),  # as large as the transport allows
        ("connect", ({"HTTP_COOKIE": "access_token=forged"}, {"token": "forged"})),
        ("disconnect", ("client namespace disconnect",)), ("export:unknown", ({"jobId": "a"},)),
        ("x" * 5000, ({},)), ("", ()),
    ]
    rng = random.Random(seed)
    generated = [(rng.choice(EVENTS), tuple(random_value(rng) for _ in range(rng.choice([0, 1, 1, 1, 2, 3]))))
                 for _ in range(count)]
    return named + generated


def assert_error_ack(ack: Any, case: Any) -> None:
    assert isinstance(ack, dict), (case, ack)
    assert ack.get("success") is False and ack.get("code") in ERROR_CODES, (case, str(ack)[:300])
    assert isinstance(ack.get("error"), str) and 0 < len(ack["error"]) < 1000, (case, str(ack)[:300])


async def fuzz(sock, cases: list[tuple[str, tuple]], *, burst: int) -> list[tuple[Any, Any]]:
    """Send every case as a call, `burst` at a time without waiting in between; returns (case, ack)."""
    answered = []
    for first in range(0, len(cases), burst):
        batch = cases[first:first + burst]
        acks = await asyncio.gather(*(sock.client.call(event, args if len(args) != 1 else args[0], timeout=20)
                                      if len(args) != 0 else sock.client.call(event, timeout=20)
                                      for event, args in batch))
        answered.extend(zip(batch, acks, strict=True))
        assert sock.client.connected, f"the connection dropped in the batch from case {first}"
    return answered


async def run_fuzz(tmp_path, *, seed: int, count: int, burst: int) -> None:
    async with running(tmp_path) as app:
        token, project_id, job_id, stored = await app.completed_export()
        sock = await app.socket(token)
        bystander = await app.socket(token)  # another tab of the same user, sending nothing wrong

        answered = await fuzz(sock, corpus(seed, count), burst=burst)
        still = await sock.call("export:sync", {"jobId": job_id, "afterSeq": 0})
        other = await bystander.call("export:sync", {"jobId": job_id, "afterSeq": 0})
        async with app.client(token) as http:
            fresh = await start(http, project_id, {"projectName": "after the fuzz"})
            await until_status(http, project_id, fresh["id"], "completed")
            await app.settled(fresh["id"])
            fresh_log = await log(http, project_id, fresh["id"])
        heard = await sock.wait_terminal(fresh["id"])

    for case, ack in answered:
        event, args = case
        assert_error_ack(ack, (event[:40], str(args)[:200]))
    assert still["success"] is True and still["events"] == stored
    assert other["success"] is True and other["events"] == stored
    assert_log_is_sound(fresh_log)
    assert heard["type"] == "export:completed" and sock.payloads(fresh["id"]) == fresh_log


async def test_every_call_on_every_handler_with_malformed_or_wrong_typed_data_gets_an_error_ack(tmp_path):
    await run_fuzz(tmp_path, seed=20261130, count=300, burst=25)


@pytest.mark.stress
@pytest.mark.parametrize("seed", range(5))
async def test_thousands_of_random_socket_messages_leave_no_call_unanswered(tmp_path, seed):
    await run_fuzz(tmp_path, seed=seed, count=2000, burst=100)


async def test_out_of_order_messages_get_the_authoritative_answer(tmp_path):
    async with running(tmp_path, items=1) as app:
        _, token = await app.user("ada@example.com")
        project_id, _ = await app.project(token, images=2)
        sock = await app.socket(token)
        unknown = "00000000-0000-0000-0000-000000000000"
        before_any_job = [await sock.call("export:sync", {"jobId": unknown}),
                          await sock.call("export:cancel", {"jobId": unknown, "projectId": project_id})]
        async with app.client(token) as http:
            job_id = (await start(http, project_id))["id"]
            await app.items.reached(job_id)
            sync_ahead = await sock.call("export:sync", {"jobId": job_id, "afterSeq": 10**6})
            wrong_project = await sock.call("export:cancel", {"jobId": job_id, "projectId": unknown})
            cancels = await asyncio.gather(*(sock.call("export:cancel", {"jobId": job_id, "projectId": project_id})
                                             for _ in range(5)))
            app.items.release(job_id)
            await app.settled(job_id)
            after = await sock.call("export:sync", {"jobId": job_id, "afterSeq": 0})
            stored = await log(http, project_id, job_id)

    for ack in (*before_any_job, wrong_project):
        assert ack["success"] is False and ack["code"] == "NOT_FOUND", ack
    assert sync_ahead["success"] is True and sync_ahead["events"] == []
    assert all(ack["success"] is True and ack["status"] == "cancelled" for ack in cancels), cancels
    assert len({ack["cancelledAt"] for ack in cancels}) == 1  # one cancel, however many asked
    assert after["job"]["status"] == "cancelled" and after["events"] == stored
    assert_log_is_sound(stored)
    assert [event["type"] for event in stored].count("export:cancelled") == 1


async def test_a_frame_over_the_size_limit_closes_only_its_own_connection(tmp_path):
    async with running(tmp_path) as app:
        token, _, job_id, stored = await app.completed_export()
        hostile = await app.socket(token)
        bystander = await app.socket(token)
        hostile.client.emit  # the call below gets no answer: the frame never reaches a handler
        with pytest.raises(socketio.exceptions.TimeoutError):
            await hostile.client.call("export:sync", {"jobId": "x" * (MAX_MESSAGE_BYTES + 1)}, timeout=2)
        await eventually(lambda: not hostile.client.connected, message="the oversized frame's connection to close")
        other = await bystander.call("export:sync", {"jobId": job_id, "afterSeq": 0})
        again = await app.socket(token)
        reconnected = await again.call("export:sync", {"jobId": job_id, "afterSeq": 0})

    assert bystander.client.connected is False or other["events"] == stored  # closed only at teardown
    assert other["success"] is True and other["events"] == stored
    assert reconnected["success"] is True and reconnected["events"] == stored


@pytest.mark.parametrize("auth", [{"token": 123}, {"token": ["a"]}, {"token": None}, {"token": "x" * 100_000},
                                  {"token": {"sub": "someone"}}, "a string", 42, [1, 2]])
async def test_a_handshake_with_malformed_auth_is_refused_and_the_server_serves_on(tmp_path, auth):
    async with running(tmp_path) as app:
        token, _, job_id, stored = await app.completed_export()
        client = socketio.AsyncClient(reconnection=False)
        app.sockets.append(client)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(app.url, auth=auth, transports=["websocket"], wait_timeout=5)
        sock = await app.socket(token)
        ack = await sock.call("export:sync", {"jobId": job_id, "afterSeq": 0})
    assert ack["success"] is True and ack["events"] == stored


async def raw_frames(app, token: str, frames: list[str], *, connect_first: bool) -> tuple[list[str], bool]:
    """Open an Engine.IO WebSocket by hand, send `frames` (Socket.IO packets, "4" + …), collect what comes back."""
    url = app.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    received: list[str] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        opened = await ws.receive_str(timeout=5)
        assert opened.startswith("0{"), opened
        if connect_first:
            await ws.send_str("40" + json.dumps({"token": token}))
            connected = await ws.receive_str(timeout=5)
            assert connected.startswith("40{"), connected
        for frame in frames:
            await ws.send_str(frame)
        await ws.send_str("3probe")  # a pong-shaped frame; then give the server time to answer what it will
        deadline = asyncio.get_running_loop().time() + 2
        while (remaining := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                message = await ws.receive(timeout=remaining)
            except TimeoutError:
                break
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            if message.data != "2":  # pings
                received.append(message.data)
        return received, not ws.closed


async def test_raw_packets_before_and_after_the_namespace_handshake_never_crash_the_server(tmp_path, caplog):
    before = ['42["export:sync",{"jobId":"x"}]', '421["export:cancel",{}]', "41", "44{}", "43", "4",
              "49", "4x", "42[", "2", "6", "5",
              ""]  # last: an empty frame is not Engine.IO at all, and Engine.IO closes the connection
    after = ['421["export:sync",{"jobId":"x"}]', '422["export:sync"]', '423["export:cancel",1,2,3]',
             '424[1,{"jobId":"x"}]', '425[null]', '426[{"a":1}]', '427["connect",{},{"token":"forged"}]',
             '42999999999999999999999["export:sync",{}]', '428["disconnect"]',
             '42[', '42"string"', "42{}", '42/other,9["export:sync",{}]', "43", '439["late ack"]', "4",
             "49", '4-1["x"]', "41/nowhere,"]
    async with running(tmp_path) as app:
        token, _, job_id, stored = await app.completed_export()
        early, early_open = await raw_frames(app, token, before, connect_first=False)
        late, late_open = await raw_frames(app, token, after, connect_first=True)
        sock = await app.socket(token)
        ack = await sock.call("export:sync", {"jobId": job_id, "afterSeq": 0})

    assert not any(frame.startswith("43") for frame in early), early  # nothing answered before the handshake
    acks = {}
    for frame in late:
        if match := re.fullmatch(r"43(\d+)(\[.*\])", frame, re.DOTALL):
            acks[int(match[1])] = json.loads(match[2])[0]
    for number in range(1, 9):  # every well-formed event with an ack id, whatever its name or data
        assert number in acks, (number, late)
        assert acks[number]["success"] is False and acks[number]["code"] in ERROR_CODES, acks[number]
    assert ack["success"] is True and ack["events"] == stored
    # each protocol violation is told in one line, never as an error with a traceback a client can repeat at will
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.text
    malformed = [r for r in caplog.records if r.getMessage().startswith("malformed Socket.IO message from a client")]
    assert len(malformed) >= 3 and all(r.levelno == logging.WARNING for r in malformed), caplog.text
