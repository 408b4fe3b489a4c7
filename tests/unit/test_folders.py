"""Which export folders the janitor keeps: the published attempt's, and any attempt that may still run."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from exportd.engine.leases import folder_needed


def job(status: str, attempt: int, file_path: str | None = None):
    return SimpleNamespace(id="j", status=status, attempt=attempt, file_path=file_path)


@pytest.mark.parametrize(("folder", "owner", "kept"), [
    ("j.2", job("completed", 2, "/data/exports/j.2/p.zip"), True),
    ("j.1", job("completed", 2, "/data/exports/j.2/p.zip"), False),  # a crashed attempt's truncated ZIP
    ("j.3", job("completed", 2, "/data/exports/j.2/p.zip"), False),  # a stale attempt's leftovers
    ("j.2", job("completed", 2, None), False),  # expired or discarded
    ("j", job("completed", 1, "/data/exports/j/p.zip"), True),  # the older one-folder layout
    ("j.2", job("processing", 2), True),
    ("j.1", job("processing", 2), False),
    ("j.1", job("pending", 1), False),  # requeued: attempt 1 is over
    ("j.2", job("pending", 1), True),  # the next claim may be making it right now
    ("j.1", job("cancelled", 1), False),
    ("j.1", job("failed", 1), False),
    ("j.1", None, False),
])
def test_a_folder_is_kept_only_while_its_attempt_may_run_or_holds_the_published_export(folder, owner, kept):
    assert folder_needed(folder, owner) is kept
