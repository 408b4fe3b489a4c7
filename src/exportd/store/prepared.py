"""Hot statements on SQLite: compiled once, then run straight on the DB-API cursor.

Every export makes about a dozen one-row statements (admission, claim, progress,
completion, each with its event row). Through ``Connection.execute`` each one
pays SQLAlchemy's execution machinery (execution context, parameter
processing, event dispatch, result metadata): about 0.1 ms of Python, several
times SQLite's own work, and all of it in the one writer thread that every
transaction in the process waits for.

A :class:`Prepared` statement is the same Core statement compiled by the same
SQLAlchemy compiler for the connection's dialect; what it skips is only the
per-call machinery. It keeps the compiled SQL, the order of its parameters
with their bind processors (so ``UTCDateTime`` and ``JSON`` columns are
stored exactly as SQLAlchemy stores them) and the result processors of its
columns, and returns rows with attribute access like SQLAlchemy's ``Row``.
``tests/integration/test_prepared.py`` checks that both paths write and read
the same values.

It is used on SQLite only: asyncpg's dialect also sets input sizes and runs
through a greenlet bridge, which ``Connection.execute`` handles and this does
not (PostgreSQL is not the embedded writer's bottleneck in any case).
"""

from __future__ import annotations

import weakref
from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement

Processor = Callable[[Any], Any] | None
_REQUIRED = object()  #: a parameter the caller must pass


class PreparedResult:
    """The few result methods the repository uses, over rows already fetched."""

    __slots__ = ("rowcount", "rows")

    def __init__(self, rows: list, rowcount: int) -> None:
        self.rows = rows
        self.rowcount = rowcount

    def one(self):
        if len(self.rows) != 1:
            raise LookupError(f"expected one row, got {len(self.rows)}")
        return self.rows[0]

    def one_or_none(self):
        if len(self.rows) > 1:
            raise LookupError(f"expected at most one row, got {len(self.rows)}")
        return self.rows[0] if self.rows else None

    def scalar_one(self):
        return self.one()[0]

    def scalar(self):
        return self.rows[0][0] if self.rows else None

    def all(self) -> list:
        return self.rows


class Prepared:
    def __init__(self, statement: ClauseElement, dialect: Dialect, column_keys: Iterable[str] | None = None) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(column_keys) if column_keys else None)
        if not dialect.positional or compiled.positiontup is None:
            raise ValueError(f"{dialect.name}: only positional parameter styles are prepared")
        if compiled.insert_prefetch or compiled.update_prefetch:
            missing = ", ".join(sorted(c.name for c in (*compiled.insert_prefetch, *compiled.update_prefetch)))
            raise ValueError(f"pass every column with a Python-side default ({missing}): they are not computed here")
        self.sql = compiled.string
        defaults = compiled.construct_params(_check=False)
        self._names = tuple(compiled.positiontup)
        self._defaults = tuple(_REQUIRED if compiled.binds[name].required else defaults.get(name)
                               for name in self._names)
        self._bind = tuple(_bind_processor(compiled.binds[name].type, dialect) for name in self._names)
        columns = _result_columns(statement)
        self._row = namedtuple("Row", [column.key for column in columns], rename=True) if columns else None
        processors = (_result_processor(column.type, dialect) for column in columns)
        self._processed = tuple((index, process) for index, process in enumerate(processors) if process is not None)

    def parameters(self, params: Mapping[str, Any]) -> tuple:
        values = []
        for name, default, process in zip(self._names, self._defaults, self._bind, strict=True):
            value = params[name] if default is _REQUIRED or name in params else default
            values.append(value if process is None or value is None else process(value))
        return tuple(values)

    def execute(self, cursor, params: Mapping[str, Any]) -> PreparedResult:
        cursor.execute(self.sql, self.parameters(params))
        if self._row is None:
            return PreparedResult([], cursor.rowcount)
        rows = cursor.fetchall()
        make, processed = self._row._make, self._processed
        if processed:
            converted = []
            for row in rows:
                values = list(row)
                for index, process in processed:
                    if values[index] is not None:
                        values[index] = process(values[index])
                converted.append(make(values))
            return PreparedResult(converted, cursor.rowcount)
        return PreparedResult([make(row) for row in rows], cursor.rowcount)


class PreparedStatements:
    """Each statement prepared the first time it runs on this dialect (and, for INSERTs, these columns)."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._prepared: dict[tuple[int, tuple[str, ...] | None], tuple[ClauseElement, Prepared]] = {}

    def execute(self, conn: Connection, statement: ClauseElement, params: Mapping[str, Any],
                *, column_keys: tuple[str, ...] | None = None) -> PreparedResult:
        key = (id(statement), column_keys)
        entry = self._prepared.get(key)
        if entry is None or entry[0] is not statement:
            entry = self._prepared[key] = (statement, Prepared(statement, self.dialect, column_keys))
        cursor = conn.connection.driver_connection.cursor()
        try:
            return entry[1].execute(cursor, params)
        finally:
            cursor.close()


_by_dialect: weakref.WeakKeyDictionary[Dialect, PreparedStatements] = weakref.WeakKeyDictionary()


def prepared_for(dialect: Dialect) -> PreparedStatements | None:
    """The prepared statements of this dialect (one engine's), or None where they are not used."""
    if dialect.name != "sqlite":
        return None
    statements = _by_dialect.get(dialect)
    if statements is None:
        statements = _by_dialect.setdefault(dialect, PreparedStatements(dialect))
    return statements


def _result_columns(statement: ClauseElement) -> list:
    if getattr(statement, "is_select", False):
        return list(statement.selected_columns)
    if getattr(statement, "is_dml", False):
        return list(statement.exported_columns)
    return []


def _bind_processor(type_, dialect: Dialect) -> Processor:
    return type_.dialect_impl(dialect).bind_processor(dialect)


def _result_processor(type_, dialect: Dialect) -> Processor:
    return type_.dialect_impl(dialect).result_processor(dialect, None)
