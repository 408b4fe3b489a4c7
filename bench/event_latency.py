"""Event latency: from the transaction's commit to a Socket.IO client's handler, against bare python-socketio.

exportd. The real app (uvicorn on 127.0.0.1, port 0, in this event loop) with
one user and an empty project. One job is created and claimed by the benchmark
in one write transaction (``repo.create_job`` + ``repo.claim``), so it is held
in ``processing`` with attempt 1 and no worker runs it (the engine's own claim
then loses the guard; the lease is set to an hour so the reaper leaves it
alone). A python-socketio ``AsyncClient`` (websocket transport, bearer token in
``auth``) is connected as the job's owner. The benchmark then writes
``export:progress`` events through the real store, one per write transaction
(``await runtime.store.apply(lambda repo: repo.progress(...))``), paced
at 1,000 events/s (event i is due at t0 + i/1000; a late one is written at
once). Each event goes the production path: commit, ``Store.publish``, the
``EventRelay`` (per-job ``seq`` ordering), ``sio.emit`` to the owner's room,
the websocket, the client's handler.

* commit stamp: ``perf_counter()`` per (jobId, seq), taken right after the
  transaction's COMMIT returns (the store backend's ``run`` is wrapped), in the
  same task step, before ``Store.publish`` hands the events to any listener, so
  before the relay emits. The benchmark checks it: ``sio.emit`` is wrapped too,
  and the output counts the events whose commit stamp precedes their emit;
* receipt stamp: the client's ``export:progress`` handler stamps
  ``perf_counter()`` per (jobId, seq). Same process, same clock.

Bare baseline. A bare ``socketio.AsyncServer`` wrapped in ``socketio.ASGIApp``
served the same way (uvicorn, loopback, port 0, same loop), whose connect
handler puts the client in a room; the benchmark emits the very payload dicts
exportd committed (captured by the listener) with
``await sio.emit("export:progress", payload, to=[room])``, at the same pace,
stamping ``perf_counter()`` just before the emit and in the client's handler.

The two are measured in alternating rounds (exportd, bare, exportd, bare, ...)
after a warm-up of each, 2 x 2,000 = 4,000 events per side at 1,000/s. Printed:
p50 / p99 / max of both, the exportd/bare ratios (target: exportd p99 <= 1.5x
bare p99), the pace each side actually achieved (a late event is sent at once,
so a side that cannot keep up runs flat out), exportd's latency split at the
relay's ``sio.emit`` (commit -> emit, emit -> client handler), the time one
progress transaction takes, and the CPU each thread used. Then the same at a pace one
progress writer sustains (300/s by default, ``--low-rate``), for reference:
latency at 1,000/s includes queueing behind the writes when the store cannot
keep the pace.

Run: ``.venv/bin/python bench/event_latency.py [--events 2000] [--rounds 2] [--rate 1000] [--low-rate 300]``
An experiment: ``--bare-busy-thread 0.125`` gives the bare process a thread that holds the GIL 12.5% of
the time during its rounds, as exportd's SQLite writer thread does.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from pathlib import Path

import socketio

from _harness import ThreadCpu, account, header, serve, spread, spread_line, stop, verdict
from exportd.api.app import create_app
from exportd.domain.jobs import EventType
from exportd.domain.options import ExportOptions
from exportd.testing import test_settings

RATIO_TARGET = 1.5
ROOM = "user:bench"


class Receiver:
    """A connected Socket.IO client that stamps every export:progress it receives."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.received: dict[tuple[str, int], float] = {}
        self.client.on("export:progress", self._on_progress)

    async def _on_progress(self, data: dict) -> None:
        self.received[(data["jobId"], data["seq"])] = time.perf_counter()

    async def connect(self, url: str, token: str | None = None) -> None:
        await self.client.connect(url, auth={"token": token} if token else None, transports=["websocket"],
                                  wait_timeout=10)

    async def wait_for(self, keys: list[tuple[str, int]], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while any(key not in self.received for key in keys):
            if time.monotonic() > deadline:
                missing = sum(key not in self.received for key in keys)
                raise TimeoutError(f"{missing} of {len(keys)} events never arrived")
            await asyncio.sleep(0.005)


async def paced(count: int, rate: float, send) -> float:
    """Call `send(i)` for i in 0..count-1, the i-th due at t0 + i/rate; returns the achieved rate."""
    began = time.perf_counter()
    for i in range(count):
        delay = began + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await send(i)
    return count / (time.perf_counter() - began)


class Exportd:
    """The real app with one job held in processing, and a client of its owner."""

    def __init__(self, tmp: Path) -> None:
        self.app = create_app(test_settings(tmp / "data", lease_seconds=3600, gc_freeze_on_start=True))
        self.runtime = self.app.runtime
        self.receiver = Receiver()
        self.committed: dict[tuple[str, int], float] = {}
        self.emitted_at: dict[tuple[str, int], float] = {}  #: when the relay called sio.emit
        self.split: list[tuple[float, float]] = []  #: (commit -> emit, emit -> client handler) per event
        self.payloads: list[dict] = []
        self.progress = 0.0
        self.write_seconds: list[float] = []

    async def start(self) -> None:
        self.url, self.server, self.task = await serve(self.app)
        user_id, token = await account(self.url, "events@example.com")
        project = await self.runtime.services.create_project(user_id, "Event bench")
        def create_and_claim(repo):
            created = repo.create_job(project_id=project.id, user_id=user_id,
                                      options=ExportOptions().to_json(), project_name=project.name)
            return created, repo.claim(created.id, lease_seconds=3600)

        job, claimed = await self.runtime.store.apply(create_and_claim)
        assert claimed is not None and claimed.attempt == 1
        self.job_id = job.id
        backend = self.runtime.store._backend
        if not hasattr(backend, "run") or not hasattr(self.runtime.sio, "emit"):
            raise SystemExit("the store backend's run() or sio.emit is gone: this benchmark's stamps need updating")
        original_run, original_emit = backend.run, self.runtime.sio.emit

        async def stamped_run(work, *, write, events, **options):
            result = await original_run(work, write=write, events=events, **options)
            if write:  # COMMIT has returned: stamped before the store publishes to any listener
                self._on_commit(events, time.perf_counter())
            return result

        async def stamped_emit(event, data=None, *args, **kwargs):
            if event == EventType.PROGRESS.value and isinstance(data, dict):
                self.emitted_at[(data["jobId"], data["seq"])] = time.perf_counter()
            return await original_emit(event, data, *args, **kwargs)

        backend.run = stamped_run
        self.runtime.sio.emit = stamped_emit
        await self.receiver.connect(self.url, token)

    def _on_commit(self, records, now: float) -> None:
        for record in records:
            if record.type == EventType.PROGRESS:
                self.committed[(record.job_id, record.seq)] = now
                self.payloads.append(record.payload)

    def stamped_before_emit(self) -> tuple[int, int]:
        """(events whose commit stamp precedes their emit, events emitted)."""
        before = sum(1 for key, emitted in self.emitted_at.items() if self.committed.get(key, emitted + 1) <= emitted)
        return before, len(self.emitted_at)

    async def _write(self, i: int) -> None:
        self.progress = min(99.0, self.progress + 0.001)
        began = time.perf_counter()
        progress = round(self.progress, 3)
        row = await self.runtime.store.apply(lambda repo: repo.progress(
            self.job_id, 1, progress=progress, stage="annotations", current=i + 1, total=1_000_000,
            message=f"COCO: image_{i:06d}.png", eta_seconds=12.5, lease_seconds=3600))
        self.write_seconds.append(time.perf_counter() - began)
        if row is None:
            raise RuntimeError("the progress write lost its guard: the job is no longer held")

    async def round(self, count: int, rate: float) -> tuple[list[float], float]:
        before = len(self.payloads)
        achieved = await paced(count, rate, self._write)
        keys = [(p["jobId"], p["seq"]) for p in self.payloads[before:]]
        await self.receiver.wait_for(keys)
        self.split += [(self.emitted_at[k] - self.committed[k], self.receiver.received[k] - self.emitted_at[k])
                       for k in keys if k in self.emitted_at]
        return [self.receiver.received[k] - self.committed[k] for k in keys], achieved

    async def stop(self) -> None:
        await self.receiver.client.disconnect()
        await stop(self.server, self.task)


def _busy(duty: float, stop: threading.Event) -> None:
    """Pure-Python work holding the GIL for 0.5 ms at a time, `duty` of the time: a stand-in for the
    SQLite writer thread of exportd's process (``--bare-busy-thread``)."""
    while not stop.is_set():
        end = time.perf_counter() + 0.0005
        while time.perf_counter() < end:
            sum(range(50))
        time.sleep(0.0005 * (1 - duty) / duty)


class Bare:
    """A bare python-socketio server served the same way, and a client in its room."""

    def __init__(self, busy_duty: float = 0.0) -> None:
        self.sio = socketio.AsyncServer(async_mode="asgi", logger=False, engineio_logger=False)
        self.busy_duty = busy_duty  #: a thread holding the GIL this share of the time during rounds (0: none)

        @self.sio.event
        async def connect(sid, environ, auth=None):
            await self.sio.enter_room(sid, ROOM)

        self.app = socketio.ASGIApp(self.sio, socketio_path="socket.io")
        self.receiver = Receiver()
        self.emitted: dict[tuple[str, int], float] = {}

    async def start(self) -> None:
        self.url, self.server, self.task = await serve(self.app)
        await self.receiver.connect(self.url)

    async def round(self, payloads: list[dict], rate: float) -> tuple[list[float], float]:
        self.receiver.received.clear()
        self.emitted.clear()

        async def send(i: int) -> None:
            payload = payloads[i]
            self.emitted[(payload["jobId"], payload["seq"])] = time.perf_counter()
            await self.sio.emit("export:progress", payload, to=[ROOM])

        stop = threading.Event()
        busy = threading.Thread(target=_busy, args=(self.busy_duty, stop), name="busy", daemon=True)
        if self.busy_duty > 0:
            busy.start()
        try:
            achieved = await paced(len(payloads), rate, send)
            keys = list(self.emitted)
            await self.receiver.wait_for(keys)
        finally:
            stop.set()
            if busy.is_alive():
                busy.join()
        return [self.receiver.received[k] - self.emitted[k] for k in keys], achieved

    async def stop(self) -> None:
        await self.receiver.client.disconnect()
        await stop(self.server, self.task)


async def measure(exportd: Exportd, bare: Bare, events: int, rounds: int, rate: float) -> dict:
    exportd.write_seconds.clear()
    exportd.split.clear()
    ours, theirs, rates = [], [], {"exportd": [], "bare": []}
    used: dict[str, dict[str, float]] = {"exportd": {}, "bare": {}}
    for _ in range(rounds):
        for side in ("exportd", "bare"):
            cpu = ThreadCpu()
            cpu.start()
            if side == "exportd":
                latencies, achieved = await exportd.round(events, rate)
                ours += latencies
            else:
                latencies, achieved = await bare.round(exportd.payloads[-events:], rate)
                theirs += latencies
            cpu.stop()
            rates[side].append(achieved)
            for name, seconds in cpu.used.items():
                used[side][name] = used[side].get(name, 0.0) + seconds
    return {"rate": rate, "ours": ours, "theirs": theirs, "rates": rates, "writes": list(exportd.write_seconds),
            "split": list(exportd.split),
            "used": used}


async def run(plan: list[tuple[float, int, int]], warmup: int,
              busy: float) -> tuple[list[dict], int, dict, tuple[int, int]]:
    with tempfile.TemporaryDirectory(prefix="exportd-bench-events-") as tmp:
        exportd, bare = Exportd(Path(tmp)), Bare(busy)
        await exportd.start()
        await bare.start()
        try:
            await exportd.round(warmup, plan[0][0])
            await bare.round(exportd.payloads[-warmup:], plan[0][0])
            results = [await measure(exportd, bare, events, rounds, rate) for rate, events, rounds in plan]
            stored = await exportd.runtime.store.query(lambda repo: repo.events_after(exportd.job_id, 0))
        finally:
            await exportd.stop()
            await bare.stop()
    return results, len(stored), exportd.payloads[-1], exportd.stamped_before_emit()


def report(result: dict, *, judge: bool) -> None:
    ours, theirs = spread(result["ours"]), spread(result["theirs"])
    print(f"  pace asked {result['rate']:.0f}/s; achieved exportd "
          + ", ".join(f"{r:.0f}/s" for r in result["rates"]["exportd"])
          + "; bare " + ", ".join(f"{r:.0f}/s" for r in result["rates"]["bare"]))
    print(spread_line("exportd: commit -> client handler", result["ours"]))
    print(spread_line("bare:    emit -> client handler", result["theirs"]))
    print(spread_line("exportd: commit -> the relay's sio.emit", [first for first, _ in result["split"]]))
    print(spread_line("exportd: sio.emit -> client handler", [second for _, second in result["split"]]))
    print(spread_line("exportd: one progress transaction", result["writes"]))
    ratio50, ratio99 = ours["p50"] / theirs["p50"], ours["p99"] / theirs["p99"]
    line = (f"  ratio exportd/bare: p50 {ratio50:.2f}x  p99 {ratio99:.2f}x  max {ours['max'] / theirs['max']:.2f}x")
    if judge:
        line += f"  (target p99 <= {RATIO_TARGET}x bare) -> {verdict(ratio99, RATIO_TARGET)}"
    print(line)
    for side in ("exportd", "bare"):
        total = sum(result["used"][side].values())
        top = [(n, v) for n, v in sorted(result["used"][side].items(), key=lambda item: -item[1]) if v >= 0.01]
        print(f"  CPU during the {side} rounds: {total:.2f} s ("
              + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in top) + ")")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="events per round per side")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second")
    parser.add_argument("--low-rate", type=float, default=300.0, help="a second, sustainable pace (0: skip)")
    parser.add_argument("--low-events", type=int, default=900, help="events per round at the low pace")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--bare-busy-thread", type=float, default=0.0, metavar="DUTY",
                        help="an experiment: during bare rounds, a thread of the bare process holds the GIL this "
                             "share of the time (e.g. 0.125, what exportd's SQLite writer thread uses); 0: off")
    args = parser.parse_args()
    header("event latency: commit -> Socket.IO client, exportd vs bare python-socketio")
    plan = [(args.rate, args.events, args.rounds)]
    if args.low_rate:
        plan.append((args.low_rate, args.low_events, args.rounds))
    if args.bare_busy_thread:
        print(f"  experiment: a thread of the bare process holds the GIL {args.bare_busy_thread:.1%} of the time")
    results, stored, sample, (before, emitted) = asyncio.run(run(plan, args.warmup, args.bare_busy_thread))
    print(f"  payload: {len(repr(sample))} chars ({', '.join(sorted(sample))})")
    print(f"  events stored for the held job: {stored} (every progress event persisted)")
    print(f"  commit stamped before the relay's emit: {before} of {emitted} progress events")
    for number, result in enumerate(results):
        print(f"-- at {result['rate']:.0f} events/s" + (" (headline)" if number == 0 else " (reference)"))
        report(result, judge=number == 0)


if __name__ == "__main__":
    main()
