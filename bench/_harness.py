"""What the benchmarks share: the real app served in this event loop, accounts, figures.

Every benchmark serves the real ASGI app (FastAPI + Socket.IO) with uvicorn on
127.0.0.1, port 0, inside the benchmark's own event loop, the way
``tests/conftest.py`` does, so server-side and client-side ``perf_counter()``
stamps come from one clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import os
import platform
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import uvicorn

PASSWORD = "correct horse battery"
TICKS = os.sysconf("SC_CLK_TCK")


async def serve(app: Any) -> tuple[str, uvicorn.Server, asyncio.Task]:
    """Serve `app` on a loopback port in the running loop; returns (base URL, server, task)."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 30
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped before it started")
        if time.monotonic() > deadline:
            raise TimeoutError("uvicorn did not start")
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}", server, task


async def stop(server: uvicorn.Server, task: asyncio.Task) -> None:
    server.should_exit = True
    await task


async def account(url: str, email: str) -> tuple[str, str]:
    """Register and log in over HTTP; returns (user id, bearer token)."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        created = await http.post("/api/auth/register", json={"email": email, "password": PASSWORD})
        created.raise_for_status()
        login = await http.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        login.raise_for_status()
        return created.json()["user"]["id"], login.json()["token"]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of `values`."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def spread(seconds: Sequence[float]) -> dict[str, float]:
    """p50 / p99 / max / mean of durations given in seconds, in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {"n": len(ms), "p50": percentile(ms, 50), "p99": percentile(ms, 99), "max": max(ms, default=math.nan),
            "mean": sum(ms) / len(ms) if ms else math.nan}


def spread_line(label: str, seconds: Sequence[float]) -> str:
    s = spread(seconds)
    return (f"  {label:<40} n={s['n']:<5} p50={s['p50']:7.2f} ms  p99={s['p99']:7.2f} ms  "
            f"max={s['max']:7.2f} ms  mean={s['mean']:7.2f} ms")


def verdict(value: float, target: float, *, lower_is_better: bool = True) -> str:
    met = value <= target if lower_is_better else value >= target
    return "meets target" if met else "MISSES target"


def header(title: str) -> None:
    print(f"== {title} ==")
    print(f"   {date.today().isoformat()}  python {platform.python_version()}  {platform.machine()}  "
          f"cpus={os.cpu_count()}  {platform.platform(terse=True)}")
    sys.stdout.flush()


class ThreadCpu:
    """CPU seconds each thread of this process used between `start()` and `stop()` (Linux /proc)."""

    def __init__(self) -> None:
        self._before: dict[int, float] = {}
        self.used: dict[str, float] = {}
        self.wall = 0.0
        self._t0 = 0.0

    @staticmethod
    def _sample() -> dict[int, float]:
        ticks = os.sysconf("SC_CLK_TCK")
        found: dict[int, float] = {}
        try:
            tids = os.listdir("/proc/self/task")
        except OSError:
            return found
        for tid in tids:
            try:
                with open(f"/proc/self/task/{tid}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            found[int(tid)] = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
        return found

    def start(self) -> None:
        self._before = self._sample()
        self._t0 = time.perf_counter()

    def stop(self) -> None:
        self.wall = time.perf_counter() - self._t0
        after = self._sample()
        names = {thread.native_id: thread.name for thread in threading.enumerate()}
        used: dict[str, float] = {}
        for tid, seconds in after.items():
            name = names.get(tid, "other (uvicorn / exited)")
            if name.startswith("exportd-pipeline"):
                name = "exportd-pipeline-*"
            elif name.startswith("asyncio_"):
                name = "asyncio.to_thread workers"
            elif name == "MainThread":
                name = "MainThread (event loop)"
            used[name] = used.get(name, 0.0) + seconds - self._before.get(tid, 0.0)
        self.used = used

    def lines(self) -> list[str]:
        total = sum(self.used.values())
        rows = [f"  CPU by thread over {self.wall:.2f} s wall (1.00 = one core busy all the time):"]
        for name, seconds in sorted(self.used.items(), key=lambda item: -item[1]):
            if seconds >= 0.01:
                rows.append(f"    {name:<40} {seconds:7.2f} s  ({seconds / self.wall:4.2f} cores)")
        rows.append(f"    {'all threads':<40} {total:7.2f} s  ({total / self.wall:4.2f} cores)")
        return rows


class LoopLag:
    """How late the event loop wakes a 1 ms sleep: a direct measure of how long it is blocked."""

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.lags: list[float] = []
        self._task: asyncio.Task | None = None

    async def _watch(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.interval)
            self.lags.append(max(0.0, time.perf_counter() - before - self.interval))

    def start(self) -> None:
        self.lags.clear()
        self._task = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class GcPauses:
    """Durations of the garbage collector's runs (``gc.callbacks``), by generation, while started."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._began = 0.0

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self._began)

    def start(self) -> None:
        for pauses in self.pauses.values():
            pauses.clear()
        gc.callbacks.append(self._callback)

    def stop(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def line(self) -> str:
        full = self.pauses[2]
        young = self.pauses[0] + self.pauses[1]
        return (f"  GC: {len(full)} full (gen-2) collections, longest {max(full, default=0) * 1000:.1f} ms, "
                f"{sum(full) * 1000:.0f} ms in all; {len(young)} young ones, {sum(young) * 1000:.0f} ms in all")


def process_tree(root: int) -> list[int]:
    """`root` and every process below it (Linux /proc)."""
    parents: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(fields[1])].append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


class Groups:
    """CPU seconds used by named groups of processes between two readings."""

    def __init__(self, roots: dict[str, list[int]], alone: tuple[str, ...] = ()) -> None:
        self.roots = roots
        self.alone = ("this process", *alone)  #: groups of these processes without their children

    def members(self, name: str) -> list[int]:
        """The group's processes now: its roots, and their children unless the group stands alone."""
        roots = self.roots[name]
        if name in self.alone:  # "this process": its children are the other groups
            return list(roots)
        return [pid for root in roots for pid in process_tree(root)]

    def read(self) -> dict[str, float]:
        return {name: cpu_seconds(self.members(name)) for name in self.roots}


def _socket_inodes_by_local_port() -> dict[int, str]:
    """TCP sockets of this machine (IPv4 and IPv6): local port -> socket inode."""
    found: dict[int, str] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            found.setdefault(int(fields[1].rsplit(":", 1)[1], 16), fields[9])
    return found


async def backends_by_client(dsn: str, groups: dict[str, list[int]]) -> dict[str, list[int]]:
    """PostgreSQL's backend processes serving each group of processes (`groups`: name -> its processes),
    by their TCP connections: the backend's ``client_port`` in ``pg_stat_activity`` is a local port of one
    of the group's sockets. Connections opened later are not in it; read it again for each measurement."""
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch("SELECT pid, client_port FROM pg_stat_activity WHERE client_port > 0")
    finally:
        await connection.close()
    backend_of_port = {row["client_port"]: row["pid"] for row in rows}
    inode_of_port = _socket_inodes_by_local_port()
    backend_of_inode = {inode_of_port[port]: pid for port, pid in backend_of_port.items() if port in inode_of_port}
    out: dict[str, list[int]] = {}
    for name, pids in groups.items():
        backends = set()
        for pid in pids:
            try:
                links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
            except OSError:
                continue
            backends.update(backend_of_inode[link[8:-1]] for link in links
                            if link.startswith("socket:[") and link[8:-1] in backend_of_inode)
        out[name] = sorted(backends)
    return out


def postgres_pids() -> list[int]:
    """The PostgreSQL server's main process, when it runs on this machine (for the CPU census: its
    backends serve every database, so other work on the server counts there too)."""
    comm, parent = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                comm[int(entry.name)] = (entry / "comm").read_text().strip()
                parent[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    return [pid for pid, name in comm.items() if name in ("postgres", "postmaster")
            and comm.get(parent[pid]) not in ("postgres", "postmaster")]
