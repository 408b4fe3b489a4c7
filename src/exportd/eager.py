"""Starting a coroutine in its caller: its first step runs at once, only the rest (if any) in a task.

``asyncio.create_task`` starts a coroutine on a later turn of the event loop,
behind every callback that is ready by then; in a busy loop that wait is most
of the cost of a short piece of work that only needs to write to a socket (a
commit's events handed to the relay, a NOTIFY sent to PostgreSQL). Python 3.12
has eager tasks for this; on 3.11 this module does the same by hand.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Coroutine
from typing import Any


def start_eagerly(coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task | None:
    """Run `coroutine` here up to the first point where it waits; from there, finish it in a task, returned.
    None when it finished without waiting."""
    try:
        waiting_for = coroutine.send(None)
    except StopIteration:
        return None
    return asyncio.get_running_loop().create_task(_finish(coroutine, waiting_for))


async def _finish(coroutine: Coroutine[Any, Any, Any], waiting_for: Any) -> Any:
    return await _resume(coroutine, waiting_for)


@types.coroutine
def _resume(coroutine: Coroutine[Any, Any, Any], waiting_for: Any):
    """Go on with a coroutine that was started elsewhere and is waiting for `waiting_for` (what it
    yielded): yield that to the task running us, and pass back what the task sends or throws."""
    while True:
        try:
            sent = yield waiting_for
        except BaseException as error:
            try:
                waiting_for = coroutine.throw(error)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                waiting_for = coroutine.send(sent)
            except StopIteration as stop:
                return stop.value
