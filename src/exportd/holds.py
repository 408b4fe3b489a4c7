"""Holds that a test in another process arms over HTTP, to force an interleaving in a real `exportd serve`.

Only wired when ``EXPORTD_TEST_HOLDS`` is set: then the routes in
``api/routes/testing.py`` let a browser or CLI test hold every new job at a
point of the pipeline (after its n-th item, or with its ZIP written just before
the completing transition), see that a job is held, and let it go. Production
never builds this.

Item holds wait in the pipeline's thread; completion holds wait on the event
loop. Both are released by ``release`` or, for good, by ``release_all``.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Literal

from exportd.engine.hooks import EngineHooks

Point = Literal["item", "before_complete"]


@dataclass
class _Held:
    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)


class Holds:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: dict[Point, int | None] = {}  # point -> item count (items only)
        self._held: dict[tuple[str, Point], _Held] = {}
        self._items: dict[str, int] = {}

    def engine_hooks(self) -> EngineHooks:
        return EngineHooks(before_complete=self._before_complete, on_item=self._on_item)

    def arm(self, point: Point, after_items: int = 1) -> None:
        """Hold every job that reaches `point` from now on (for items: right after item `after_items`)."""
        with self._lock:
            self._armed[point] = after_items if point == "item" else None

    def state(self, job_id: str, point: Point) -> str:
        """``waiting`` (not there yet), ``held`` or ``released``."""
        with self._lock:
            held = self._held.get((job_id, point))
        if held is None or not held.arrived.is_set():
            return "waiting"
        return "released" if held.released.is_set() else "held"

    def release(self, job_id: str, point: Point) -> None:
        self._slot(job_id, point).released.set()

    def release_all(self) -> None:
        """Disarm every point and let every held job go."""
        with self._lock:
            self._armed.clear()
            held = list(self._held.values())
        for slot in held:
            slot.released.set()

    def _slot(self, job_id: str, point: Point) -> _Held:
        with self._lock:
            return self._held.setdefault((job_id, point), _Held())

    def _should_hold(self, job_id: str, point: Point) -> bool:
        with self._lock:
            if point not in self._armed:
                return False
            if point == "item":
                self._items[job_id] = self._items.get(job_id, 0) + 1
                return self._items[job_id] == self._armed[point]
            return True

    def _on_item(self, job_id: str, attempt: int) -> None:
        if self._should_hold(job_id, "item"):
            slot = self._slot(job_id, "item")
            slot.arrived.set()
            slot.released.wait()

    async def _before_complete(self, job_id: str, attempt: int) -> None:
        if self._should_hold(job_id, "before_complete"):
            slot = self._slot(job_id, "before_complete")
            slot.arrived.set()
            while not slot.released.is_set():
                await asyncio.to_thread(slot.released.wait, 0.5)
