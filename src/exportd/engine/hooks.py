"""Points where tests and benchmarks may hold a job, to force an interleaving.

Production code runs the defaults, which do nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass


async def _nothing(job_id: str, attempt: int) -> None:
    return None


async def _nothing_yet(job_id: str) -> None:
    return None


@dataclass
class EngineHooks:
    after_claim: Callable[[str, int], Awaitable[None]] = _nothing  #: the job is processing, pipeline not started
    before_complete: Callable[[str, int], Awaitable[None]] = _nothing  #: ZIP written, completion not yet tried
    on_item: Callable[[str, int], None] | None = None  #: in the pipeline's thread, after every item
    after_download_check: Callable[[str], Awaitable[None]] = _nothing_yet  #: a download found the job completed
    before_download_stream: Callable[[str], Awaitable[None]] = _nothing_yet  #: file open, no byte sent yet
