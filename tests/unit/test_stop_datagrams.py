"""A worker's stops travel to its children as datagrams of JSON arrays: in order, none too large, none lost."""

from __future__ import annotations

import json

from exportd.engine.stops import MAX_DATAGRAM, address, datagrams


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
