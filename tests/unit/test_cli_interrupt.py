"""An interrupted command stops its watch even when the watch loses a cancellation, as Python 3.11's
`asyncio.wait_for` can make it do (python-socketio's connect waits with it)."""

from __future__ import annotations

import asyncio

from exportd.client.commands import _stopped


async def test_a_watch_that_swallows_its_first_cancellation_is_still_stopped():
    swallowed = asyncio.Event()

    async def watch() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            swallowed.set()  # as wait_for does when what it waited for completed at the same moment
        await asyncio.sleep(3600)

    task = asyncio.ensure_future(watch())
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        await _stopped(task)
    assert swallowed.is_set() and task.cancelled()


async def test_a_watch_that_ended_on_its_own_keeps_its_result():
    async def watch() -> int:
        return 0

    task = asyncio.ensure_future(watch())
    await asyncio.sleep(0)
    await _stopped(task)
    assert task.result() == 0
