"""The jobs table's indexes leave a running export's frequent updates free to be made in place.

PostgreSQL makes an UPDATE "HOT", without a new entry in every index of the table, only when no
indexed column changes (a column in a partial index's predicate counts). A running export writes
its progress up to four times a second and renews its lease: an index holding any column those
statements set would turn each of them into one insertion per index.
"""

from __future__ import annotations

import re

from exportd.store import direct
from exportd.store.tables import export_jobs


def set_columns(statement: str) -> set[str]:
    """The columns an UPDATE's SET clause assigns."""
    clause = re.search(r"\bSET\b(.*?)\bWHERE\b", statement, re.S).group(1)
    return set(re.findall(r"(\w+)\s*=", clause))


def indexed_columns() -> dict[str, set[str]]:
    """Each index of the jobs table: the columns it holds and those its predicate reads."""
    held = {}
    for index in export_jobs.indexes:
        columns = {column.name for column in index.columns}
        where = index.dialect_options["postgresql"]["where"]
        if where is not None:
            names = {column.name for column in export_jobs.columns}
            columns |= names & set(re.findall(r"\w+", str(where)))
        held[index.name] = columns
    return held


def test_the_progress_statement_sets_what_this_test_expects_of_it():
    changed = set_columns(direct.PROGRESS)
    assert {"progress", "lease_expires_at", "seq", "updated_at"} <= changed, changed


def test_no_index_holds_a_column_a_progress_report_or_a_lease_renewal_changes():
    changed = (set_columns(direct.PROGRESS) - {"status"}) | {"lease_expires_at"}  # status is set to itself
    overlapping = {name: columns & changed for name, columns in indexed_columns().items() if columns & changed}
    assert overlapping == {}


def test_a_partial_index_counts_the_columns_its_predicate_reads():
    assert indexed_columns()["ix_export_jobs_processing_started"] == {"started_at", "status"}
