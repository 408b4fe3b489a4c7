"""Which failures mean "the machine cannot write now" (503) and which are bugs (500)."""

from __future__ import annotations

import errno
import sqlite3

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from exportd.faults import storage_fault, store_fault


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES])
def test_a_full_read_only_or_failing_disk_is_a_storage_fault(code):
    assert storage_fault(OSError(code, "no"))


def test_other_os_errors_and_other_exceptions_are_not_storage_faults():
    assert not storage_fault(FileNotFoundError(errno.ENOENT, "missing"))
    assert not storage_fault(ValueError("bad"))


def sqlite_error(message: str, code: int) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code
    return error


class PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize("error", [
    OperationalError("INSERT", {}, sqlite_error("database or disk is full", sqlite3.SQLITE_FULL)),
    OperationalError("INSERT", {}, sqlite_error("attempt to write a readonly database", sqlite3.SQLITE_READONLY)),
    OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full")),  # no code attached
    OperationalError("INSERT", {}, PgError("53100")),  # disk_full
    OperationalError("INSERT", {}, PgError("25006")),  # read_only_sql_transaction
    OperationalError("SELECT", {}, PgError("08006")),  # connection_failure
    ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
])
def test_a_full_read_only_or_unreachable_database_is_a_store_fault(error):
    assert store_fault(error)


@pytest.mark.parametrize("error", [
    IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed: users.email")),
    OperationalError("SELECT", {}, sqlite_error("no such table: jobs", sqlite3.SQLITE_ERROR)),
    OperationalError("SELECT", {}, PgError("42P01")),  # undefined_table: a bug, not the machine
    KeyError("x"),
])
def test_constraint_and_schema_errors_are_not_store_faults(error):
    assert not store_fault(error)


def test_the_sdk_raises_service_unavailable_with_the_servers_retry_after_and_payload_too_large_by_code():
    from exportd.client.errors import PayloadTooLarge, ServiceUnavailable, error_from

    unavailable = error_from(503, {"success": False, "error": "Storage is full.", "code": "SERVICE_UNAVAILABLE",
                                   "retryAfter": 30}, retry_after="30")
    too_large = error_from(413, {"success": False, "error": "Too large.", "code": "PAYLOAD_TOO_LARGE"})
    assert isinstance(unavailable, ServiceUnavailable) and unavailable.retry_after == 30
    assert unavailable.code == "SERVICE_UNAVAILABLE" and unavailable.message == "Storage is full."
    assert isinstance(too_large, PayloadTooLarge) and too_large.code == "PAYLOAD_TOO_LARGE"
