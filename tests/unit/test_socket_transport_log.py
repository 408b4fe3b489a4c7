"""What the Socket.IO transport's log says when a client breaks the protocol, and when exportd fails."""

from __future__ import annotations

import logging

import pytest
import socketio

from exportd.domain.events import rooms_for
from exportd.realtime.sio import transport_log


def _record(error: BaseException) -> logging.LogRecord:
    return transport_log.makeRecord(transport_log.name, logging.ERROR, __file__, 1, "message async handler error",
                                    (), (type(error), error, error.__traceback__))


def _raised(call) -> BaseException:
    try:
        call()
    except Exception as error:  # noqa: BLE001 - the error is what the test looks at
        return error
    raise AssertionError("the call did not fail")


@pytest.mark.parametrize("frame", ["4x", "42[", '42["export:sync", {'])
def test_a_packet_python_socketio_cannot_decode_is_one_warning_line(frame):
    record = _record(_raised(lambda: socketio.packet.Packet(encoded_packet=frame)))
    assert transport_log.filters[0].filter(record)
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert record.getMessage().startswith("malformed Socket.IO message from a client: ")
    assert "\n" not in record.getMessage()


def test_a_failure_in_exportd_code_keeps_its_level_and_traceback():
    error = _raised(lambda: rooms_for({}))  # a KeyError raised in exportd's own code
    record = _record(error)
    assert transport_log.filters[0].filter(record)
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert record.exc_info[1] is error and record.getMessage() == "message async handler error"
