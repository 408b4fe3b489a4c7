"""A worker's stops travel to its children as datagrams of JSON arrays: in order, none too large, none lost;
a worker whose database is unreachable at its start still starts, and says so."""

from __future__ import annotations

import json

from exportd.engine.stops import MAX_DATAGRAM, StopRelay, address, datagrams, new_token


def test_a_batch_of_stops_is_split_into_datagrams_that_keep_their_order_and_each_fit():
    notes = [{"jobId": f"job-{n}", "seq": n, "type": "export:cancelled", "payload": {"pad": "x" * 7000}}
             for n in range(30)]
    sent = datagrams(notes)
    assert len(sent) > 1
    assert all(len(datagram) <= MAX_DATAGRAM for datagram in sent)
    assert [note for datagram in sent for note in json.loads(datagram)] == notes


def test_a_small_batch_is_one_datagram_and_no_batch_is_none():
    notes = [{"jobId": "a", "seq": 2, "type": "export:cancelled"}, {"jobId": "b", "seq": 5, "type": "export:failed"}]
    assert [json.loads(datagram) for datagram in datagrams(notes)] == [notes]
    assert datagrams([]) == []


def test_each_child_of_each_worker_has_an_address_of_its_own_outside_the_file_system():
    assert address("t1", 10) != address("t1", 11) != address("t2", 10)
    assert address("t1", 10).startswith(b"\0")


def test_a_relay_that_cannot_reach_the_database_gives_up_waiting_says_so_and_keeps_trying(caplog):
    relay = StopRelay("postgresql+asyncpg://exportd@127.0.0.1:1/exportd", token=new_token(), children=list)
    try:
        assert relay.start(timeout=0.3) is False
        assert "not listening" in caplog.text
        assert relay._thread.is_alive() and not relay.listener.connected.is_set()
    finally:
        relay.stop()
    assert not relay._thread.is_alive()


def test_where_there_is_no_abstract_namespace_a_childs_socket_is_a_file_it_removes_when_it_closes(monkeypatch, tmp_path):
    import asyncio
    import os
    import sys

    from exportd.engine.stops import StopInbox

    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path))
    token = new_token()
    assert address(token, 7) == os.path.join(str(tmp_path), f"exportd-stops-{token}-7")
    loop = asyncio.new_event_loop()
    try:
        inbox = StopInbox(token, on_records=lambda records: None, on_resync=lambda: None)
        inbox.attach(loop)
        assert os.path.exists(address(token, os.getpid()))
        inbox.close()
        assert not os.path.exists(address(token, os.getpid()))
    finally:
        loop.close()
