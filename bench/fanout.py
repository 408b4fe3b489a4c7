"""Fan-out: 1,000 sockets on 2 API nodes, 1,000 events/s, commit -> client against bare python-socketio + Redis.

Method. Everything runs on this machine, each part in processes of its own:

* exportd: a cluster started with ``deploy/cluster.py`` (2 ``exportd serve`` API
  nodes, no workers, a fresh PostgreSQL database, a Redis server of the
  benchmark's own as the broker). The benchmark (the driver process) creates
  ``--users`` accounts, a project and one job each, created and claimed in one
  write transaction through the real store, so each job is held in
  ``processing`` with attempt 1 and nobody runs it. ``--committers`` processes
  (default 2, each with its own share of the jobs, as workers have) then commit
  ``export:progress`` events of these jobs through the real store, by the entry
  point a worker's runner uses (``Store.progress``: on PostgreSQL one statement
  on asyncpg directly, between BEGIN and COMMIT, ``store/direct.py``), one
  transaction per event, event n of job n mod users, so every event takes the
  production path: the NOTIFY sent with the COMMIT, right after it (progress
  events; migration 0005), each node's LISTEN connection, its relay (per-job seq
  order, gaps filled from the store, duplicates dropped), ``sio.emit`` to the
  owner's room on that node, the websocket, the client's handler. A job's events
  are committed one after the other (its seq is bumped under its row lock);
  different jobs' events commit concurrently, at most ``--inflight`` at once in
  each committer (its store's pool holds 20), the way many workers report progress.
* bare: two ``socketio.AsyncServer(client_manager=socketio.AsyncRedisManager(...))``
  nodes in ``socketio.ASGIApp`` under uvicorn (the same ``uvicorn.Config``
  defaults ``exportd serve`` uses) on the same Redis server; a connection joins
  the room its ``auth`` names. The driver emits through a write-only
  ``AsyncRedisManager`` to the same rooms, with the very payload dicts the
  previous exportd round committed, at the same pace: by default it replays that
  round's timeline (each payload at the moment after the round's start that
  exportd committed it), so both sides carry the same load even when exportd
  falls short of the asked pace; ``--bare-pace asked`` paces it at ``--rate``.
* clients: ``--users`` x ``--tabs`` sockets a side (default 500 x 2 = 1,000),
  python-socketio ``AsyncClient``s on the websocket transport, tab t of user u on
  node (u + t) mod 2, so with 2 tabs every user has one socket on each node and
  every event is delivered to exactly 2 sockets, one per node (2,000 deliveries
  a second at 1,000 events/s). They are spread over ``--client-processes``
  processes; both sides' sockets stay connected for the whole run in the same
  processes, so the client side weighs alike on both. Each client process
  measures its own event loop's lag during every round, to show whether the
  clients keep up.

Heaps: each exportd API node moves what is alive at its start out of the garbage
collector's full scans (``gc.freeze``, ``EXPORTD_GC_FREEZE_ON_START``); the bare nodes do
the same at theirs, and the benchmark's own processes (clients, committers) once set up,
so that a full collection over their sockets' objects (100-180 ms in a client process)
does not stop the receipts of whichever side's round it falls in.

Stamps, one clock: ``time.monotonic_ns()`` (CLOCK_MONOTONIC, system-wide on
Linux, so comparable across the processes of one machine).

* exportd commit: in the committing process, right after the transaction's
  COMMIT returns: by the store's first listener (``Store.subscribe(first=True)``),
  which the store calls in the same task step, before any other. A second stamp
  is taken just before COMMIT is sent (when the statement has returned and its
  event is handed to the connection to announce with the COMMIT,
  ``AnnouncingConnection.announce_at_commit``): the true commit lies between the
  two, and under load the process may see its COMMIT return after other
  processes already heard the NOTIFY;
* bare emit: just before ``await manager.emit(...)``;
* receipt: in the client's ``export:progress`` handler, per socket.

Latency is per delivery (receipt on one socket minus commit or emit). Event i of
a round is due at t0 + i/rate; a late one is sent at once, so a side that cannot
keep the pace runs flat out and its achieved pace says so. After a warm-up round
of each side, the sides alternate (exportd, bare, exportd, bare, ...). A
probe in the first client process LISTENs on the events channel itself, so
the figures also show commit -> NOTIFY heard by a plain asyncpg connection.

Printed: p50 / p99 / max of both sides and their ratios (target: exportd p99 <=
1.5x bare p99, with the COMMIT-sent stamp's ratio as the upper bound), the pace
each side achieved (the ratio speaks for the asked pace only if exportd reached
it), the commit's own time, whether every socket got every event of each job
once and in seq order, the client processes' loop lag, and for each group of
processes the CPU it used during each side's rounds and the time its threads
spent runnable but waiting for a CPU (``/proc/<pid>/task/*/schedstat``), which
says whether a side was short of CPU.

Run: ``.venv/bin/python bench/fanout.py [--users 500] [--tabs 2] [--rate 1000] [--events 3000] [--rounds 3]``
(about 4 minutes on a shared 2-core machine)
Needs PostgreSQL (``EXPORTD_TEST_PG_DSN``, default postgresql://postgres@127.0.0.1:5432/test) and redis-server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

RATIO_TARGET = 1.5
PACE_REACHED = 0.95
EVENT = "export:progress"


def now_ns() -> int:
    return time.monotonic_ns()  # CLOCK_MONOTONIC: one clock for every process of this machine


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process and its reaped children (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def runqueue_seconds(pid: int) -> float:
    """Time the threads of a process spent runnable but waiting for a CPU (Linux /proc/<pid>/task/*/schedstat)."""
    waited = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as handle:
                waited += int(handle.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return waited / 1e9


def postgres_pids() -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as handle:
                    if handle.read().strip() == "postgres":
                        found.append(int(entry))
            except OSError:
                continue
    return found


# -- the bare node: python-socketio with the Redis manager, under uvicorn -------------------------

def set_heap_aside() -> None:
    """Move everything alive now out of the garbage collector's full scans (``gc.freeze``).

    An exportd API node does it once started; the bare nodes do the same at theirs. The benchmark's own
    processes (clients, committers) do it once set up: a full collection over 1,000 sockets' objects took
    100–180 ms in a client process, stopping the receipt of every event it was handling, on whichever
    side's round it fell (measured with a ``gc.callbacks`` timer in every process of a run)."""
    import gc

    gc.collect()
    gc.freeze()


def bare_node(port: int, redis_url: str) -> None:
    import socketio
    import uvicorn

    sio = socketio.AsyncServer(async_mode="asgi", client_manager=socketio.AsyncRedisManager(redis_url),
                               logger=False, engineio_logger=False)

    @sio.event
    async def connect(sid, environ, auth=None):
        user = auth.get("user") if isinstance(auth, dict) else None
        if not user:
            raise socketio.exceptions.ConnectionRefusedError("auth.user is required")
        await sio.enter_room(sid, f"user:{user}")

    app = socketio.ASGIApp(sio, socketio_path="socket.io")
    set_heap_aside()  # as an exportd API node does at its start (EXPORTD_GC_FREEZE_ON_START)
    uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="info")).run()


# -- a client process: many AsyncClients, stamping receipts ---------------------------------------

class ClientProcess:
    def __init__(self, sockets: list[dict], listen_dsn: str | None) -> None:
        self.sockets = sockets
        self.listen_dsn = listen_dsn
        self.clients: list = []
        self.received: dict[str, list[tuple[int, str, int, int]]] = {"exportd": [], "bare": []}
        self.heard: list[tuple[str, int, int]] = []  #: the NOTIFY probe: (jobId, seq, stamp)
        self.lags: list[float] = []
        self._lag_task: asyncio.Task | None = None
        self.mine: dict[str, Counter] = {"exportd": Counter(), "bare": Counter()}  #: sockets per user

    async def connect(self) -> None:
        import socketio

        limit = asyncio.Semaphore(25)

        async def one(index: int, spec: dict) -> None:
            client = socketio.AsyncClient(reconnection=False)
            bucket = self.received[spec["side"]]

            async def on_progress(data: dict) -> None:
                bucket.append((index, data["jobId"], data["seq"], now_ns()))

            client.on(EVENT, on_progress)
            async with limit:
                await client.connect(spec["url"], auth=spec["auth"], transports=["websocket"], wait_timeout=30)
            self.clients.append(client)

        for index, spec in enumerate(self.sockets):
            self.mine[spec["side"]][spec["user"]] += 1
        await asyncio.gather(*(one(index, spec) for index, spec in enumerate(self.sockets)))
        if self.listen_dsn:
            import asyncpg

            self.probe = await asyncpg.connect(self.listen_dsn)

            def heard(_connection, _pid, _channel, message: str) -> None:
                stamp = now_ns()
                note = json.loads(message)
                if note.get("type") == EVENT:
                    self.heard.append((note["jobId"], note["seq"], stamp))

            await self.probe.add_listener("exportd_events", heard)

    async def _watch(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            self.lags.append(max(0.0, time.perf_counter() - before - 0.001))

    def start(self) -> dict:
        for bucket in self.received.values():
            bucket.clear()
        self.heard.clear()
        self.lags.clear()
        self._lag_task = asyncio.create_task(self._watch())
        return {"ok": True}

    async def collect(self, side: str, per_user: dict[str, int], timeout: float) -> dict:
        expected = sum(count * self.mine[side][user] for user, count in per_user.items())
        deadline = time.monotonic() + timeout
        while len(self.received[side]) < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self._lag_task is not None:
            self._lag_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lag_task
        return {"received": self.received[side], "expected": expected, "lags": self.lags, "heard": self.heard,
                "cpu": cpu_seconds(os.getpid())}

    async def close(self) -> None:
        await asyncio.gather(*(client.disconnect() for client in self.clients), return_exceptions=True)
        if self.listen_dsn:
            await self.probe.close()


async def client_main(reader, answer) -> None:
    spec = json.loads(await reader.readline())
    process = ClientProcess(spec["sockets"], spec.get("listen"))
    await process.connect()
    set_heap_aside()  # 1,000 sockets' objects: a full collection would stop every receipt of this process
    answer({"ready": len(process.clients)})
    while line := await reader.readline():
        command = json.loads(line)
        if command["cmd"] == "start":
            answer(process.start())
        elif command["cmd"] == "collect":
            answer(await process.collect(command["side"], command["per_user"], command["timeout"]))
        elif command["cmd"] == "quit":
            break
    await process.close()
    answer({"closed": True})


async def committer_main(reader, answer) -> None:
    spec = json.loads(await reader.readline())
    side = ExportdSide(spec["database_url"])
    jobs = {job_id: Job(job_id, user_id) for job_id, user_id in spec["jobs"]}
    set_heap_aside()
    answer({"ready": len(jobs)})
    while line := await reader.readline():
        command = json.loads(line)
        if command["cmd"] == "round":
            answer(await side.round([(i, jobs[job_id]) for i, job_id in command["events"]], command["t0"],
                                    command["rate"], command["inflight"]))
        elif command["cmd"] == "quit":
            break
    await side.store.close()
    answer({"closed": True})


class Child:
    """The driver's handle on one child process (JSON lines over its stdin and stdout)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, role: str, first: dict, log: Path) -> Child:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__).resolve()), "--role", role, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=log.open("ab"), limit=256 * 1024 * 1024)
        child = cls(process)
        await child.send(first)
        return child

    async def send(self, message: dict) -> None:
        self.process.stdin.write((json.dumps(message) + "\n").encode())
        await self.process.stdin.drain()

    async def receive(self, timeout: float = 120) -> dict:
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"child process {self.process.pid} exited (see its log)")
        return json.loads(line)

    async def ask(self, message: dict, timeout: float = 120) -> dict:
        await self.send(message)
        return await self.receive(timeout)


async def serve_lines(handle) -> None:
    """A child's loop: the first line configures it, every later line is a command answered by one line."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=256 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def answer(message: dict) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    await handle(reader, answer)


# -- the driver -----------------------------------------------------------------------------------

class Job:
    def __init__(self, job_id: str, user_id: str) -> None:
        self.id = job_id
        self.user_id = user_id
        self.progress = 0.0
        self.count = 0
        self.lock = asyncio.Lock()


class ExportdSide:
    """A committer's store on the cluster's database: commits the progress of the jobs it was given, as a
    worker's runner does (``Store.progress``)."""

    def __init__(self, database_url: str) -> None:
        from exportd.store.announcing import AnnouncingConnection
        from exportd.store.uow import Store

        self.store = Store(database_url)
        self.committed: dict[tuple[str, int], int] = {}
        self.sending: dict[tuple[str, int], int] = {}  #: the statement is done, COMMIT is about to be sent
        self.payloads: dict[tuple[str, int], dict] = {}
        if getattr(self.store._backend, "direct", None) is None:
            raise SystemExit("the store takes no direct path here: this benchmark's commit stamps need updating")
        announce = AnnouncingConnection.announce_at_commit

        def stamped_announce(connection, record) -> None:
            if record.type.value == EVENT:
                self.sending[(record.job_id, record.seq)] = now_ns()  # only the COMMIT itself is left
            announce(connection, record)

        def stamped_commit(records) -> None:
            stamp = now_ns()  # COMMIT has returned: the store's first listener, in the same step
            for record in records:
                if record.type.value == EVENT:
                    self.committed[(record.job_id, record.seq)] = stamp
                    self.payloads[(record.job_id, record.seq)] = record.payload

        AnnouncingConnection.announce_at_commit = stamped_announce  # this committer process only
        self.store.subscribe(stamped_commit, first=True)

    async def write(self, job: Job) -> tuple[str, int, float]:
        async with job.lock:  # one job's events commit one after the other, as one attempt reports them
            job.progress = min(99.0, job.progress + 0.001)
            job.count += 1
            progress, count = round(job.progress, 3), job.count
            began = time.perf_counter()
            row = await self.store.progress(
                job.id, 1, progress=progress, stage="annotations", current=count, total=1_000_000,
                message=f"COCO: image_{count:06d}.png", eta_seconds=12.5, lease_seconds=3600)
            took = time.perf_counter() - began
            if row is None:
                raise RuntimeError("a progress write lost its guard: the job is no longer held")
            return row.id, row.seq, took

    async def round(self, events: list[tuple[int, Job]], t0: int, rate: float, inflight: int) -> dict:
        """Event (i, job) is due at t0 + i/rate (monotonic ns); at most `inflight` transactions at once."""
        slots = asyncio.Semaphore(inflight)
        sent: list[list] = []
        took: list[float] = []

        async def one(i: int, job: Job) -> None:
            try:
                job_id, seq, seconds = await self.write(job)
            finally:
                slots.release()
            sent.append([i, job_id, seq, self.committed[(job_id, seq)], self.sending[(job_id, seq)],
                         self.payloads[(job_id, seq)]])
            took.append(seconds)

        tasks = []
        for i, job in events:
            delay = (t0 + i * 1e9 / rate - now_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            await slots.acquire()
            tasks.append(asyncio.create_task(one(i, job)))
        await asyncio.gather(*tasks)
        return {"sent": sent, "done": now_ns(), "commit_seconds": took}


async def create_jobs(database_url: str, users: int, secret: str) -> tuple[list[Job], dict[str, str]]:
    """`users` accounts with a project and a job each, created and claimed (attempt 1) in one transaction."""
    from exportd.domain.options import ExportOptions
    from exportd.security import Tokens
    from exportd.store.uow import Store

    tag = uuid.uuid4().hex[:8]

    def create(repo):
        made = []
        for number in range(users):
            user = repo.add_user(f"fanout-{tag}-{number}@example.com", "not-a-password-hash")
            project = repo.add_project(user.id, f"Fan-out {number}")
            job = repo.create_job(project_id=project.id, user_id=user.id, options=ExportOptions().to_json(),
                                  project_name=project.name)
            claimed = repo.claim(job.id, lease_seconds=3600)
            if claimed is None or claimed.attempt != 1:
                raise RuntimeError("could not claim a benchmark job")
            made.append(Job(job.id, user.id))
        return made

    store = Store(database_url)
    try:
        jobs = await store.apply(create)
    finally:
        await store.close()
    tokens = Tokens(secret, access_seconds=86400, download_seconds=600)
    return jobs, {job.user_id: tokens.access_token(job.user_id)[0] for job in jobs}


async def exportd_round(committers: list[Child], jobs: list[Job], offset: int, count: int, rate: float,
                        inflight: int) -> dict:
    """Events offset..offset+count-1, event n of job n mod users, each job always on the same committer."""
    shares: list[list] = [[] for _ in committers]
    for i in range(count):
        number = (offset + i) % len(jobs)
        shares[number % len(committers)].append([i, jobs[number].id])
    t0 = now_ns() + 50_000_000  # every committer's clock starts together
    answers = await asyncio.gather(*(child.ask({"cmd": "round", "events": share, "t0": t0, "rate": rate,
                                                "inflight": inflight}, timeout=600)
                                     for child, share in zip(committers, shares, strict=True)))
    rows = sorted((row for answer in answers for row in answer["sent"]), key=lambda row: row[3])  # commit order
    done = max(answer["done"] for answer in answers)
    return {"achieved": count / ((done - t0) / 1e9), "sent": {(job, seq): stamp for _, job, seq, stamp, _, _ in rows},
            "sending": {(job, seq): stamp for _, job, seq, _, stamp, _ in rows},
            "payloads": [payload for *_, payload in rows], "offsets": [row[3] - t0 for row in rows],
            "commit_seconds": [value for answer in answers for value in answer["commit_seconds"]]}


async def bare_round(manager, payloads: list[dict], offsets: list[int]) -> dict:
    """The same payloads to the same rooms through a write-only Redis manager, payload i due at t0 + offsets[i] ns."""
    sent: dict[tuple[str, int], int] = {}
    t0 = now_ns()
    for payload, offset in zip(payloads, offsets, strict=True):
        delay = (t0 + offset - now_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        room = f"user:{payload['userId']}"
        sent[(payload["jobId"], payload["seq"])] = now_ns()
        await manager.emit(EVENT, payload, room=room, namespace="/")
    return {"achieved": len(payloads) / ((now_ns() - t0) / 1e9), "sent": sent, "payloads": payloads,
            "commit_seconds": [], "sending": {}}


class Groups:
    """CPU seconds of each group of processes, and seconds its threads waited for a CPU, between two samples."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self._before: dict[str, float] = {}

    def _sample(self) -> dict[str, float]:
        groups = {**self.groups, "postgres (all)": postgres_pids()}
        sampled = {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in groups.items()}
        sampled.update({f"wait:{name}": sum(runqueue_seconds(pid) for pid in pids) for name, pids in groups.items()})
        return sampled

    def start(self) -> None:
        self._before = self._sample()

    def stop(self) -> dict[str, float]:
        after = self._sample()
        return {name: after[name] - self._before.get(name, 0.0) for name in after}


def check_order(received: list[tuple[int, str, int, int]]) -> tuple[int, int]:
    """(duplicates, out-of-order or gaps) over every socket's receipts of each job, in arrival order."""
    last: dict[tuple[int, str], int] = {}
    seen: set[tuple[int, str, int]] = set()
    duplicates = disorder = 0
    for socket_index, job_id, seq, _ in received:
        if (socket_index, job_id, seq) in seen:
            duplicates += 1
            continue
        seen.add((socket_index, job_id, seq))
        previous = last.get((socket_index, job_id))
        if previous is not None and seq != previous + 1:
            disorder += 1
        last[(socket_index, job_id)] = seq
    return duplicates, disorder


async def measure(side: str, run_round, clients: list[Child], groups: Groups, timeout: float) -> dict:
    for process in clients:
        await process.ask({"cmd": "start"})
    groups.start()
    wall = time.perf_counter()
    result = await run_round()
    per_user = Counter(payload["userId"] for payload in result["payloads"])
    answers = [await process.ask({"cmd": "collect", "side": side, "per_user": per_user, "timeout": timeout})
               for process in clients]
    wall = time.perf_counter() - wall
    used = groups.stop()
    latencies, lags, heard, upper = [], [], [], []
    expected = received = duplicates = disorder = 0
    for offset, answer in enumerate(answers):
        expected += answer["expected"]
        # sockets are numbered per process: make the index unique across processes
        rows = [(offset * 1_000_000 + s, job, seq, stamp) for s, job, seq, stamp in answer["received"]]
        received += len(rows)
        d, o = check_order(rows)
        duplicates += d
        disorder += o
        latencies += [(stamp - result["sent"][(job, seq)]) / 1e9 for _, job, seq, stamp in rows
                      if (job, seq) in result["sent"]]
        upper += [(stamp - result["sending"][(job, seq)]) / 1e9 for _, job, seq, stamp in rows
                  if (job, seq) in result["sending"]]
        lags += answer["lags"]
        heard += [(stamp - result["sent"][(job, seq)]) / 1e9 for job, seq, stamp in answer["heard"]
                  if (job, seq) in result["sent"]]
    return {"latencies": latencies, "achieved": result["achieved"], "expected": expected, "received": received,
            "duplicates": duplicates, "disorder": disorder, "lags": lags, "heard": heard, "upper": upper, "cpu": used,
            "wall": wall, "payloads": result["payloads"], "commit_seconds": result["commit_seconds"]}


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def wait_port(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"process {process.pid} exited before listening on {port}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {port}") from None
            await asyncio.sleep(0.1)


async def run(args: argparse.Namespace) -> None:
    import asyncpg
    import socketio
    from _harness import header, spread, spread_line, verdict
    from cluster_scaling import DEPLOY, PG_ADMIN_DSN, admin

    header(f"fan-out: {args.users * args.tabs} sockets a side on 2 API nodes ({args.users} users x {args.tabs} "
           f"tabs), {args.rate:.0f} events/s, exportd vs bare python-socketio + AsyncRedisManager")
    name = f"exportd_bench_{uuid.uuid4().hex[:10]}"
    await admin(f'CREATE DATABASE "{name}"')
    host_part = PG_ADMIN_DSN.split("://", 1)[1].rsplit("/", 1)[0]
    database_url = f"postgresql+asyncpg://{host_part}/{name}"
    redis_port = free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    redis_command = [shutil.which("redis-server") or "redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                     "--save", "", "--appendonly", "no"]
    redis = subprocess.Popen(redis_command, stdout=subprocess.DEVNULL)  # noqa: ASYNC220 - started once
    started: list[subprocess.Popen] = []
    clients: list[Child] = []
    committers: list[Child] = []
    secret = "bench-" + "k" * 40
    with tempfile.TemporaryDirectory(prefix="exportd-fanout-") as folder:
        root = Path(folder)
        logs = root / "logs"
        logs.mkdir()
        try:
            env = {key: value for key, value in os.environ.items() if not key.startswith("EXPORTD_")}
            env.update(EXPORTD_DATABASE_URL=database_url, EXPORTD_BROKER_URL=redis_url, EXPORTD_SECRET_KEY=secret,
                       EXPORTD_DATA_DIR=str(root / "data"), EXPORTD_STORAGE_DIR=str(root / "storage"))
            state_file = root / "cluster.json"
            cluster = [sys.executable, str(DEPLOY), "--api-nodes", "2", "--workers", "0", "--port", "0",
                       "--log-dir", str(logs), "--state-file", str(state_file)]
            started.append(subprocess.Popen(cluster, env=env, stdout=subprocess.DEVNULL))  # noqa: ASYNC220
            bare_ports = [free_port(), free_port()]
            for number, port in enumerate(bare_ports):
                log = (logs / f"bare-{number + 1}.log").open("ab")
                node = [sys.executable, str(Path(__file__).resolve()), "--role", "bare-node", "--port", str(port),
                        "--redis", redis_url]
                started.append(subprocess.Popen(node, stdout=log, stderr=subprocess.STDOUT))  # noqa: ASYNC220
            deadline = time.monotonic() + 120
            while not state_file.exists():
                if started[0].poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the cluster did not start (see {logs})")
                await asyncio.sleep(0.1)
            state = json.loads(state_file.read_text())
            nodes = [node["url"] for node in state["api"]]
            for port, process in zip(bare_ports, started[1:], strict=True):
                await wait_port(port, process)
            bare_urls = [f"http://127.0.0.1:{port}" for port in bare_ports]

            jobs, tokens = await create_jobs(database_url, args.users, secret)
            committers = [await Child.start("committer", {
                "database_url": database_url,
                "jobs": [[job.id, job.user_id] for number, job in enumerate(jobs)
                         if number % args.committers == k]}, logs / f"committer-{k + 1}.log")
                for k in range(args.committers)]
            for child in committers:
                await child.receive()
            per_process: list[list[dict]] = [[] for _ in range(args.client_processes)]
            count = 0
            for u, job in enumerate(jobs):
                for t in range(args.tabs):
                    node = (u + t) % 2
                    target = per_process[count % args.client_processes]
                    target.append({"side": "exportd", "url": nodes[node], "auth": {"token": tokens[job.user_id]},
                                   "user": job.user_id})
                    target.append({"side": "bare", "url": bare_urls[node], "auth": {"user": job.user_id},
                                   "user": job.user_id})
                    count += 1
            listen_dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
            clients = [await Child.start("clients", {"sockets": sockets, "listen": listen_dsn if number == 0 else None},
                                         logs / f"clients-{number + 1}.log")
                       for number, sockets in enumerate(per_process)]
            connected = 0
            for process in clients:
                connected += (await process.receive(300))["ready"]
            print(f"  connected: {connected} sockets ({connected // 2} a side) in {len(clients)} client processes; "
                  f"API nodes {', '.join(nodes)}; bare nodes {', '.join(bare_urls)}")
            sys.stdout.flush()

            manager = socketio.AsyncRedisManager(redis_url, write_only=True)
            groups = Groups({
                "API nodes (2)": [node["pid"] for node in state["api"]],
                "bare nodes (2)": [process.pid for process in started[1:]],
                "clients": [process.process.pid for process in clients],
                "committers": [child.process.pid for child in committers],
                "driver (bare emitter)": [os.getpid()],
                "redis": [redis.pid],
            })
            offset = 0
            last: dict = {}

            async def next_exportd(events: int):
                nonlocal offset
                result = await exportd_round(committers, jobs, offset, events, args.rate, args.inflight)
                offset += events
                last.update(result)
                return result

            def next_bare():
                if args.bare_pace == "replay":  # exportd's own timeline: the moment each event committed
                    offsets = [max(0, value) for value in last["offsets"]]
                else:
                    offsets = [round(i * 1e9 / args.rate) for i in range(len(last["payloads"]))]
                return bare_round(manager, last["payloads"], offsets)

            timeout = args.collect_timeout
            await measure("exportd", lambda: next_exportd(args.warmup), clients, groups, timeout)
            await measure("bare", next_bare, clients, groups, timeout)
            results: dict[str, list[dict]] = {"exportd": [], "bare": []}
            for _ in range(args.rounds):
                results["exportd"].append(await measure("exportd", lambda: next_exportd(args.events), clients,
                                                        groups, timeout))
                results["bare"].append(await measure("bare", next_bare, clients, groups, timeout))
            report(results, args, spread, spread_line, verdict)
        finally:
            for process in clients + committers:
                with contextlib.suppress(Exception):
                    await process.send({"cmd": "quit"})
                    await asyncio.wait_for(process.process.wait(), 30)
                if process.process.returncode is None:
                    process.process.kill()
            for process in started:
                process.send_signal(signal.SIGTERM)
            for process in started:
                try:
                    process.wait(60)
                except subprocess.TimeoutExpired:
                    process.kill()
            redis.kill()
            redis.wait()
            with contextlib.suppress(asyncpg.PostgresError, OSError):
                await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            if args.keep_logs:
                kept = Path(tempfile.gettempdir()) / f"exportd-fanout-logs-{uuid.uuid4().hex[:6]}"
                shutil.copytree(logs, kept)
                print(f"  logs kept in {kept}")


def report(results: dict[str, list[dict]], args, spread, spread_line, verdict) -> None:
    commit_seconds = [value for result in results["exportd"] for value in result["commit_seconds"]]
    ours = [value for result in results["exportd"] for value in result["latencies"]]
    theirs = [value for result in results["bare"] for value in result["latencies"]]
    print(f"-- {args.rounds} rounds a side of {args.events} events at {args.rate:.0f}/s, alternating, after a "
          f"warm-up of {args.warmup}; {args.users} users x {args.tabs} sockets ({args.tabs} deliveries an event)")
    for name in ("exportd", "bare"):
        paces = ", ".join(f"{result['achieved']:.0f}/s" for result in results[name])
        lost = sum(result["expected"] - result["received"] for result in results[name])
        duplicates = sum(result["duplicates"] for result in results[name])
        disorder = sum(result["disorder"] for result in results[name])
        print(f"  {name:<8} pace achieved {paces}; deliveries {sum(r['received'] for r in results[name])} of "
              f"{sum(r['expected'] for r in results[name])} (lost {lost}, duplicates {duplicates}, "
              f"out of seq order or gaps {disorder})")
    print(spread_line("exportd: commit -> client handler", ours))
    upper = [value for result in results["exportd"] for value in result["upper"]]
    print(spread_line("exportd: COMMIT sent -> client handler", upper))
    print(spread_line("bare:    emit -> client handler", theirs))
    heard = [value for result in results["exportd"] for value in result["heard"]]
    print(spread_line("exportd: commit -> NOTIFY heard (probe)", heard))
    print(spread_line("exportd: one progress transaction", commit_seconds))
    for name in ("exportd", "bare"):
        lags = [value for result in results[name] for value in result["lags"]]
        print(spread_line(f"client loop lag, {name} rounds", lags))
    a, b = spread(ours), spread(theirs)
    ratio = a["p99"] / b["p99"]
    print(f"  per round p99: exportd " + ", ".join(f"{spread(r['latencies'])['p99']:.1f}" for r in results["exportd"])
          + " ms; bare " + ", ".join(f"{spread(r['latencies'])['p99']:.1f}" for r in results["bare"]) + " ms")
    for name in ("exportd", "bare"):
        wall = sum(result["wall"] for result in results[name])
        used: dict[str, float] = defaultdict(float)
        for result in results[name]:
            for group, seconds in result["cpu"].items():
                used[group] += seconds
        print(f"  CPU during the {name} rounds ({wall:.1f} s wall, in cores): "
              + ", ".join(f"{group} {seconds / wall:.2f}" for group, seconds in used.items()
                          if not group.startswith("wait:")))
        print(f"    waiting for a CPU (runnable, not running), in cores: "
              + ", ".join(f"{group[5:]} {seconds / wall:.2f}" for group, seconds in used.items()
                          if group.startswith("wait:")))
    print(f"  ratio exportd/bare: p50 {a['p50'] / b['p50']:.2f}x  p99 {ratio:.2f}x  max {a['max'] / b['max']:.2f}x  "
          f"(target p99 <= {RATIO_TARGET}x bare) -> {verdict(ratio, RATIO_TARGET)}")
    bound = spread(upper)
    print(f"  upper bound (COMMIT sent -> client): p99 {bound['p99'] / b['p99']:.2f}x bare")
    paced = min(result["achieved"] for result in results["exportd"]) / args.rate
    reached = verdict(paced, PACE_REACHED, lower_is_better=False)
    print(f"  exportd's slowest round reached {paced:.0%} of the asked {args.rate:.0f} events/s (the ratio holds at "
          f"the asked pace only if it reached it: >= {PACE_REACHED:.0%}) -> {reached}")
    print(f"  load average: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Method: the docstring of bench/fanout.py, and bench/README.md.")
    parser.add_argument("--users", type=int, default=500, help="users, one held job each (default 500)")
    parser.add_argument("--tabs", type=int, default=2, help="sockets per user, spread over both nodes (default 2)")
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second in total (default 1000)")
    parser.add_argument("--events", type=int, default=3000, help="events per round per side (default 3000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per side, alternating (default 3)")
    parser.add_argument("--warmup", type=int, default=1000, help="warm-up events per side (default 1000)")
    parser.add_argument("--inflight", type=int, default=20,
                        help="transactions in flight at most in each committer (default 20, the store's pool)")
    parser.add_argument("--client-processes", type=int, default=2, help="processes the sockets are spread over")
    parser.add_argument("--committers", type=int, default=2,
                        help="processes committing exportd's events, each its own jobs (default 2)")
    parser.add_argument("--collect-timeout", type=float, default=30.0, help="seconds to wait for the last deliveries")
    parser.add_argument("--bare-pace", choices=("replay", "asked"), default="replay",
                        help="replay: the bare side emits each event at the moment, after its round's start, that "
                             "exportd committed it in the round before (the same pace and bursts); asked: at --rate")
    parser.add_argument("--keep-logs", action="store_true", help="copy the nodes' and clients' logs to $TMPDIR")
    parser.add_argument("--role", choices=("driver", "clients", "committer", "bare-node"), default="driver",
                        help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--redis", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "bare-node":
        bare_node(args.port, args.redis)
    elif args.role == "clients":
        asyncio.run(serve_lines(client_main))
    elif args.role == "committer":
        asyncio.run(serve_lines(committer_main))
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
