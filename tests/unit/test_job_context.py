"""The job context a pipeline thread talks to: the stop signal, and the benchmark's item pacing."""

from __future__ import annotations

import asyncio

import pytest

from exportd.engine import running as running_module
from exportd.engine.hooks import EngineHooks
from exportd.engine.running import JobContext, RunningJob
from exportd.export.context import ExportCancelled


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(running_module, "time", fake)
    return fake


def context(item_delay: float) -> tuple[JobContext, RunningJob]:
    job = RunningJob(job_id="j", attempt=1, project_id="p")
    loop = asyncio.new_event_loop()
    try:
        return JobContext(job, loop, progress_interval=1.0, item_delay=item_delay, hooks=EngineHooks()), job
    finally:
        loop.close()


def test_an_item_delay_pads_each_item_to_that_length_in_all(clock):
    ctx, _ = context(item_delay=0.010)
    clock.now += 0.003  # the first item's own work
    ctx.item_done()
    clock.now += 0.012  # an item longer than the delay: no sleep at all
    ctx.item_done()
    ctx.item_done()  # an item with no work of its own sleeps the whole delay

    assert clock.slept == [0.007, 0.010]


def test_without_an_item_delay_nothing_sleeps(clock):
    ctx, _ = context(item_delay=0)
    ctx.item_done()
    assert clock.slept == []


def test_the_stop_signal_is_raised_at_the_next_check_with_its_reason(clock):
    ctx, job = context(item_delay=0)
    ctx.raise_if_cancelled()
    job.halt("cancelled")
    job.halt("lost")  # the first reason stands
    with pytest.raises(ExportCancelled, match="cancelled"):
        ctx.raise_if_cancelled()
