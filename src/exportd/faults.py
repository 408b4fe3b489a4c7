"""Which failures of the machine mean "try again later" rather than a bug in exportd.

A full or read-only disk, an exhausted quota, a database that is full, read-only
or unreachable: nothing the client sent is wrong, and nothing is gained by a 500.
These become ``StorageUnavailable`` or ``StoreUnavailable`` (503 with
``Retry-After``) where they are met: ``LocalStorage`` for files, ``Store`` for
the database, and the HTTP edge for anything that still slips through (a
request body spooled to a full temporary folder).
"""

from __future__ import annotations

import errno
import sqlite3

#: errno values of a write that failed because of where it was written, not what
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES})
#: SQLite result codes (primary) of a database that cannot take writes
_SQLITE_CODES = frozenset({sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR,
                           sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
#: PostgreSQL SQLSTATE classes and codes of a server that cannot take the transaction now
_PG_CLASSES = ("08", "53", "57")  # connection exception, insufficient resources, operator intervention
_PG_STATES = frozenset({"25006"})  # read_only_sql_transaction (a standby, or default_transaction_read_only)


def storage_fault(error: BaseException) -> bool:
    """An OSError from writing to a disk that is full, read-only, over quota or failing."""
    return isinstance(error, OSError) and error.errno in STORAGE_ERRNOS


def store_fault(error: BaseException) -> bool:
    """A database error (SQLAlchemy's wrapper or the driver's own) that says the store cannot write now."""
    for cause in _chain(error):
        if isinstance(cause, sqlite3.Error):
            code = getattr(cause, "sqlite_errorcode", None)
            if code is not None and code & 0xFF in _SQLITE_CODES:
                return True
            if "disk is full" in str(cause) or "readonly database" in str(cause):
                return True
        state = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        if isinstance(state, str) and (state[:2] in _PG_CLASSES or state in _PG_STATES):
            return True
        if isinstance(cause, (ConnectionError, TimeoutError)) or storage_fault(cause):
            return True
        if getattr(cause, "connection_invalidated", False):  # SQLAlchemy saw the connection break
            return True
    return False


def _chain(error: BaseException):
    """The error, what SQLAlchemy wrapped (``.orig``), and what it was raised from."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [error]
    while stack:
        cause = stack.pop()
        if cause is None or id(cause) in seen:
            continue
        seen.add(id(cause))
        yield cause
        stack.extend([getattr(cause, "orig", None), cause.__cause__])
