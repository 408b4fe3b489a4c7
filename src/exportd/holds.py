"""Holds that a test in another process arms over HTTP, to force an interleaving in a real `exportd serve`.

Only wired when ``EXPORTD_TEST_HOLDS`` is set: then the routes in
``api/routes/testing.py`` let a browser or CLI test hold every new job at a
point of the pipeline (after its n-th item, or with its ZIP written just before
the completing transition), see that a job is held, and let it go. Production
never builds this.

Item holds wait in the pipeline's thread; completion holds wait on the event
loop. Both are released by ``release`` or, for good, by ``release_all``.
Scaled out, the jobs run in worker processes: `RedisHolds` keeps the same holds
in Redis, so an API node arms and releases them and the workers honour them.
"""

from __future__ import annotations

import asyncio
import os
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


class RedisHolds:
    """The same holds, kept in Redis, for jobs that run in another process (``exportd worker``).

    The API node's ``/api/testing/holds`` routes arm and release them; the
    workers' hooks read them. Keys live under ``exportd:holds:`` on the broker's
    Redis database.
    """

    PREFIX = "exportd:holds:"

    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, decode_responses=True)

    def engine_hooks(self) -> EngineHooks:
        return EngineHooks(before_complete=self._before_complete, on_item=self._on_item)

    def arm(self, point: Point, after_items: int = 1) -> None:
        self._redis.set(self._key("armed", point), after_items if point == "item" else 1)

    def state(self, job_id: str, point: Point) -> str:
        return self._redis.get(self._key("held", job_id, point)) or "waiting"

    def release(self, job_id: str, point: Point) -> None:
        pipe = self._redis.pipeline()
        pipe.set(self._key("held", job_id, point), "released")
        pipe.rpush(self._key("release", job_id, point), 1)
        pipe.execute()

    def release_all(self) -> None:
        self._redis.delete(self._key("armed", "item"), self._key("armed", "before_complete"))
        for key in self._redis.scan_iter(self._key("held", "*")):
            if self._redis.get(key) == "held":
                _, _, job_id, point = key.rsplit(":", 3)
                self.release(job_id, point)  # type: ignore[arg-type]

    def _key(self, *parts: str) -> str:
        return self.PREFIX + ":".join(parts)

    def _should_hold(self, job_id: str, point: Point) -> bool:
        import redis

        try:
            return self._armed_here(job_id, point)
        except redis.RedisError:  # Redis away (a test restarting it): nothing is armed
            return False

    def _armed_here(self, job_id: str, point: Point) -> bool:
        armed = self._redis.get(self._key("armed", point))
        if armed is None:
            return False
        if point == "item":
            return self._redis.incr(self._key("items", job_id)) == int(armed)
        return True

    def _hold(self, job_id: str, point: Point) -> None:
        import redis

        held = self._key("held", job_id, point)
        try:
            self._redis.set(self._key("holder", job_id), os.getpid())  # which process holds it (a test may kill it)
            self._redis.set(held, "held")
            while self._redis.get(held) == "held":
                self._redis.blpop([self._key("release", job_id, point)], timeout=1)
        except redis.RedisError:  # Redis went away (a test restarting it): the hold is over
            return

    def _on_item(self, job_id: str, attempt: int) -> None:
        if self._should_hold(job_id, "item"):
            self._hold(job_id, "item")

    async def _before_complete(self, job_id: str, attempt: int) -> None:
        if await asyncio.to_thread(self._should_hold, job_id, "before_complete"):
            await asyncio.to_thread(self._hold, job_id, "before_complete")
