"""Scaled-out throughput: empty-project exports per second against a hand-written Celery peer (target >= 1.0x).

Method. One fresh PostgreSQL database and one Redis server of the benchmark's
own (a free port) serve both sides; both sides run at the same time on this
machine, idle while the other is measured.

* exportd: a cluster started with ``deploy/cluster.py``: one API node and
  ``--workers`` ``exportd worker`` processes of ``--concurrency`` prefork
  children each (default 1 x 2: two prefork processes in all), production
  settings (progress every 0.25 s, store check 0.5 s, ``EXPORTD_EXPORT_NICE``
  10) except cheap password hashing and no per-user limit of active exports
  (``EXPORTD_MAX_ACTIVE_EXPORTS_PER_USER=0``; the peer checks none either, and
  one user starts them all). Every job: the creating statement with its
  ``export:queued`` row, the task to Redis, the guarded claim, the snapshot,
  the pipeline, the guarded completion, every event a row, NOTIFY, relayed by
  the API node to the owner's socket in seq order.
* the peer (``_celery_peer.py``): the same number of Celery worker processes
  with the same number of prefork children on the same Redis and PostgreSQL,
  running a plain task: reads the job row, plain UPDATEs (processing,
  throttled progress, completed), no event rows, exportd's ``build_export``
  with the same options, emits through python-socketio's write-only
  ``RedisManager`` to a bare python-socketio node. Its children are niced like
  exportd's, so other work on the machine weighs on both alike. Its jobs are
  created through one plain HTTP route on that node (INSERT the row, emit
  ``export:queued``, send the task): no authentication, no limit check, no
  event row.
* the floor: ``_celery_noop.py`` (no-op tasks, same number of prefork
  processes at the same niceness, on the benchmark's Redis), each round.

Each round runs the three in turn (the order reversed every other round, so
neither side always runs first after the no-op worker). For exportd and the
peer, ``--jobs`` exports of one empty project (no images) are started by
``--producers`` concurrent HTTP producers (httpx, one connection each); a
python-socketio client of the owner is connected to each side's node. Both
sides are stamped at the same points: from the first request sent to the
moment the client receives the N-th terminal event. A warm-up of
``--warmup`` jobs runs on each side first.

Afterwards the store is read back: every exportd job completed, every event
log gap-free (seq 1..n) with exactly one terminal event, ``export:completed``,
as its last, and what the client received equals, job by job and in order,
what was stored; every peer job completed and its three events received
(events the peer's client missed are counted and shown, not held against it).
A failed read-back prints ``READ BACK FAILED`` under the result.

Printed per round: jobs/s of each side, the ratio exportd / peer (target
>= 1.0x), the no-op floor and each side's ratio to it, the CPU time each
process group used per job (the workers' main processes, which hand the tasks to the
prefork children, also apart), PostgreSQL's part split by the process group each backend serves
(matched by its connection's port; the rest is the server's own processes and connections of no
group), and the load average.

Run: ``.venv/bin/python bench/cluster_throughput.py [--jobs 1000] [--rounds 2] [--producers 8]``
Needs PostgreSQL (``EXPORTD_TEST_PG_DSN``), redis-server, and psycopg 3 (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import asyncpg
import httpx
import socketio
from _harness import Groups, account, backends_by_client, cpu_seconds, header, postgres_pids, verdict
from cluster_scaling import DEPLOY, PG_ADMIN_DSN, admin, free_port

TARGET = 1.0
#: the process groups whose PostgreSQL backends are counted apart
CLIENTS = ("exportd API node", "exportd workers", "peer node", "peer workers", "this process")
TERMINAL = {"export:completed", "export:failed", "export:cancelled"}
HERE = Path(__file__).resolve().parent
FAULTS: list[str] = []  #: sides whose read-back found a job not completed, or (exportd) a log or delivery unsound


class Receiver:
    """A socket client's view: every event by job, and the moment the expected terminal count is reached."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.by_job: dict[str, list[tuple[int | None, str]]] = defaultdict(list)
        self.terminal = 0
        self.target: int | None = None
        self.finished_at = 0.0
        self.done = asyncio.Event()

    def expect(self, more: int) -> None:
        self.target = self.terminal + more
        self.done.clear()

    async def on_any(self, event: str, data=None) -> None:
        if not isinstance(data, dict):
            return
        self.by_job[data.get("jobId", "?")].append((data.get("seq"), event))
        if event in TERMINAL:
            self.terminal += 1
            if self.target is not None and self.terminal >= self.target and not self.done.is_set():
                self.finished_at = time.perf_counter()
                self.done.set()


async def connect(url: str, auth: dict, receiver: Receiver) -> socketio.AsyncClient:
    client = socketio.AsyncClient(reconnection=False)
    client.on("*", receiver.on_any)
    await client.connect(url, auth=auth, transports=["websocket"], wait_timeout=20)
    return client


class Side:
    def __init__(self, name: str, http: httpx.AsyncClient, path: str, body: dict, receiver: Receiver) -> None:
        self.name, self.http, self.path, self.body, self.receiver = name, http, path, body, receiver
        self.job_ids: list[str] = []

    async def run(self, jobs: int, producers: int) -> tuple[float, float]:
        """(seconds from the first request to the N-th terminal event received, seconds to submit them all)."""
        self.receiver.expect(jobs)
        remaining = iter(range(jobs))

        async def producer() -> None:
            for _ in remaining:
                response = await self.http.post(self.path, json=self.body)
                response.raise_for_status()
                self.job_ids.append(response.json()["id"])

        began = time.perf_counter()
        await asyncio.gather(*(producer() for _ in range(producers)))
        submitted = time.perf_counter() - began
        await asyncio.wait_for(self.receiver.done.wait(), timeout=600)
        return self.receiver.finished_at - began, submitted


def start(command: list[str], env: dict, log: Path, cwd: Path | None = None) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


async def wait_for(predicate, timeout: float, what: str, processes=()) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"{what}: a process exited with {process.returncode} (see its log)")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def check_exportd(dsn: str, job_ids: list[str], receiver: Receiver) -> list[str]:
    connection = await asyncpg.connect(dsn)
    try:
        jobs = await connection.fetch("SELECT id, status FROM export_jobs WHERE id = ANY($1::varchar[])", job_ids)
        rows = await connection.fetch("SELECT job_id, seq, type FROM export_events WHERE job_id = ANY($1::varchar[]) "
                                      "ORDER BY job_id, seq", job_ids)
    finally:
        await connection.close()
    logs: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for row in rows:
        logs[row["job_id"]].append((row["seq"], row["type"]))
    statuses = Counter(row["status"] for row in jobs)
    unsound = undelivered = 0
    for job_id in job_ids:
        log = logs[job_id]
        terminal = [kind for _, kind in log if kind in TERMINAL]
        if [seq for seq, _ in log] != list(range(1, len(log) + 1)) or terminal != ["export:completed"] \
                or log[-1][1] != "export:completed":
            unsound += 1
        if receiver.by_job.get(job_id) != log:
            undelivered += 1
    per_job = Counter(len(logs[job_id]) for job_id in job_ids)
    if unsound or undelivered or statuses.get("completed", 0) != len(job_ids):
        FAULTS.append("exportd")
    return [f"  exportd read back: {len(job_ids)} jobs, statuses {dict(statuses)}; {len(rows)} event rows, "
            f"events per job {dict(sorted(per_job.items()))}",
            f"  exportd logs gap-free, one terminal event last: {len(job_ids) - unsound}/{len(job_ids)}; "
            f"received by the client exactly as stored, in order: {len(job_ids) - undelivered}/{len(job_ids)}"]


async def check_peer(dsn: str, job_ids: list[str], receiver: Receiver) -> list[str]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch("SELECT status, count(*) AS n FROM peer_jobs WHERE id = ANY($1::varchar[]) "
                                      "GROUP BY status", job_ids)
    finally:
        await connection.close()
    expected = ["export:queued", "export:started", "export:completed"]
    kinds = {job_id: [kind for _, kind in receiver.by_job.get(job_id, [])] for job_id in job_ids}
    in_order = sum(1 for job_id in job_ids if kinds[job_id] == expected)
    all_three = sum(1 for job_id in job_ids if sorted(kinds[job_id]) == sorted(expected))
    short = [index for index, job_id in enumerate(job_ids) if sorted(kinds[job_id]) != sorted(expected)]
    if sum(row["n"] for row in rows if row["status"] == "completed") != len(job_ids):
        FAULTS.append("peer")  # events the peer's client missed are a property of the peer, reported above
    return [f"  peer read back: {len(job_ids)} jobs, statuses {({row['status']: row['n'] for row in rows})}; "
            f"queued, started, completed received: {all_three}/{len(job_ids)}, in that order: "
            f"{in_order}/{len(job_ids)}"
            + (f"; jobs missing an event, by order of creation: {short[:10]}" if short else "")]


def load() -> str:
    return "load average " + ", ".join(f"{value:.2f}" for value in os.getloadavg())


async def main() -> None:
    try:
        import psycopg  # noqa: F401 - the peer's workers need it; without it each task fails and the run never ends
    except ImportError:
        raise SystemExit("the hand-written peer needs the bench extra: .venv/bin/pip install -e '.[test,bench]' "
                         "(make bench does it)") from None
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000, help="exports per side per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--producers", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=100, help="exports per side before the first round")
    parser.add_argument("--workers", type=int, default=1, help="worker processes per side")
    parser.add_argument("--concurrency", type=int, default=2, help="prefork children per worker process")
    parser.add_argument("--nice", type=int, default=10,
                        help="EXPORTD_EXPORT_NICE of exportd's workers, and the same for the peer's (default: "
                             "exportd's production default, 10)")
    parser.add_argument("--no-floor", action="store_true", help="skip the Celery no-op floor")
    parser.add_argument("--options", type=json.loads, default=None,
                        help="export options as JSON (default: the defaults)")
    args = parser.parse_args()
    header(f"Scaled-out throughput: empty-project exports, exportd against a hand-written Celery peer "
           f"({args.workers} x {args.concurrency} prefork processes a side)")
    print(f"  {load()} at start; {args.jobs} jobs a side a round, {args.rounds} rounds, {args.producers} producers, "
          f"options {json.dumps(args.options) if args.options is not None else 'the defaults'}, "
          f"workers of both sides at niceness +{args.nice}", flush=True)

    name = f"exportd_bench_{uuid.uuid4().hex[:10]}"
    await admin(f'CREATE DATABASE "{name}"')
    host_part = PG_ADMIN_DSN.split("://", 1)[1].rsplit("/", 1)[0]
    dsn = f"postgresql://{host_part}/{name}"
    redis_port = free_port()
    redis = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(redis_port),  # noqa: ASYNC220
                              "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    redis_url = f"redis://127.0.0.1:{redis_port}"
    os.environ["EXPORTD_BENCH_CELERY_BROKER"] = f"{redis_url}/15"  # the floor on this benchmark's Redis
    supervisor = node = None
    peers: list[subprocess.Popen] = []
    clients: list[socketio.AsyncClient] = []
    https: list[httpx.AsyncClient] = []
    folder = tempfile.TemporaryDirectory(prefix="exportd-cluster-throughput-")
    root = Path(folder.name)
    (root / "logs").mkdir()
    try:
        env = {key: value for key, value in os.environ.items() if not key.startswith("EXPORTD_")}
        env.update(EXPORTD_DATABASE_URL=f"postgresql+asyncpg://{host_part}/{name}",
                   EXPORTD_BROKER_URL=f"{redis_url}/0", EXPORTD_SECRET_KEY="bench-" + "k" * 40,
                   EXPORTD_DATA_DIR=str(root / "data"), EXPORTD_STORAGE_DIR=str(root / "storage"),
                   EXPORTD_MAX_ACTIVE_EXPORTS_PER_USER="0", EXPORTD_PASSWORD_HASH_FAST="true",
                   EXPORTD_WORKER_CONCURRENCY=str(args.concurrency), EXPORTD_EXPORT_NICE=str(args.nice))
        state_file = root / "cluster.json"
        supervisor = subprocess.Popen([sys.executable, str(DEPLOY), "--api-nodes", "1", "--workers",  # noqa: ASYNC220
                                       str(args.workers), "--concurrency", str(args.concurrency), "--port", "0",
                                       "--log-dir", str(root / "logs"), "--state-file", str(state_file)],
                                      env=env, stdout=subprocess.DEVNULL)

        async def cluster_up() -> bool:
            return state_file.exists()

        await wait_for(cluster_up, 180, "the exportd cluster", [supervisor])
        cluster = json.loads(state_file.read_text())
        url = cluster["api"][0]["url"]
        user_id, token = await account(url, "bench@example.com")
        exportd_http = httpx.AsyncClient(base_url=url, timeout=60, headers={"Authorization": f"Bearer {token}"},
                                         limits=httpx.Limits(max_connections=args.producers))
        https.append(exportd_http)
        project = (await exportd_http.post("/api/projects", json={"name": "Empty project"})).json()
        await admin_in(dsn, "CREATE TABLE peer_jobs (LIKE export_jobs INCLUDING ALL)")

        peer_env = {**env, "PEER_DSN": dsn, "PEER_BROKER": f"{redis_url}/1", "PEER_SIO_REDIS": f"{redis_url}/2",
                    "PEER_STORAGE": str(root / "peer-storage"), "PEER_NICE": str(args.nice),
                    "PEER_PROGRESS_INTERVAL": "0.25",
                    "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        node_port = free_port()
        node = start([sys.executable, str(HERE / "_celery_peer.py"), "node", str(node_port)], peer_env,
                     root / "logs" / "peer-node.log")
        for number in range(args.workers):
            peers.append(start([sys.executable, "-m", "celery", "-A", "_celery_peer", "worker", "--pool=prefork",
                                f"--concurrency={args.concurrency}", "-Q", "exportd-bench-peer", "-n",
                                f"peer{number}@%h", "--loglevel=WARNING", "--without-gossip", "--without-mingle"],
                               peer_env, root / "logs" / f"peer-worker-{number}.log", cwd=HERE))
        node_url = f"http://127.0.0.1:{node_port}"
        peer_http = httpx.AsyncClient(base_url=node_url, timeout=60,
                                      limits=httpx.Limits(max_connections=args.producers))
        https.append(peer_http)

        async def node_up() -> bool:
            try:
                return (await peer_http.get("/health")).status_code == 200
            except httpx.HTTPError:
                return False

        await wait_for(node_up, 60, "the peer's node", [node])

        exportd_seen, peer_seen = Receiver("exportd"), Receiver("peer")
        clients.append(await connect(url, {"token": token}, exportd_seen))
        clients.append(await connect(node_url, {"user": user_id}, peer_seen))
        body = {"options": args.options} if args.options is not None else {}
        sides = {
            "exportd": Side("exportd", exportd_http, f"/api/projects/{project['id']}/export", body, exportd_seen),
            "peer": Side("peer", peer_http, "/jobs", {"projectId": project["id"], "userId": user_id,
                                                      "projectName": project["name"], **body}, peer_seen),
        }
        groups = Groups({
            "exportd API node": [node_["pid"] for node_ in cluster["api"]],
            "exportd workers": [worker["pid"] for worker in cluster["workers"]],
            "exportd workers: main processes": [worker["pid"] for worker in cluster["workers"]],
            "peer node": [node.pid], "peer workers": [peer.pid for peer in peers],
            "peer workers: main processes": [peer.pid for peer in peers],
            "redis": [redis.pid], "postgres (whole server)": postgres_pids(), "this process": [os.getpid()],
        }, alone=("exportd workers: main processes", "peer workers: main processes"))
        for side in sides.values() if args.warmup else ():  # warm-up: forks done, imports and caches paid
            await side.run(args.warmup, args.producers)
        print(f"  warm-up: {args.warmup} jobs a side done; {load()}", flush=True)

        rates: dict[str, list[float]] = defaultdict(list)
        for number in range(args.rounds):
            order = ["floor", "exportd", "peer"] if number % 2 == 0 else ["peer", "exportd", "floor"]
            print(f"-- round {number + 1} ({', '.join(order)})", flush=True)
            for which in order:
                if which == "floor":
                    if args.no_floor:
                        continue
                    rate = await asyncio.to_thread(noop_floor, args.jobs, args.workers * args.concurrency, args.nice)
                    rates["floor"].append(rate)
                    print(f"  celery no-op floor: {rate:7.1f} tasks/s   ({load()})", flush=True)
                    continue
                backends = await backends_by_client(dsn, {name: groups.members(name) for name in CLIENTS})
                before = groups.read()
                served_before = {name: cpu_seconds(pids) for name, pids in backends.items()}
                seconds, submitted = await sides[which].run(args.jobs, args.producers)
                after = groups.read()
                served = {name: (cpu_seconds(pids) - served_before[name]) / args.jobs * 1000
                          for name, pids in backends.items()}
                rates[which].append(args.jobs / seconds)
                cpu = ", ".join(f"{group} {(after[group] - before[group]) / args.jobs * 1000:.2f}"
                                for group in after if after[group] > before[group])
                print(f"  {which:<8} {args.jobs} exports in {seconds:6.2f} s = {args.jobs / seconds:7.1f} jobs/s "
                      f"(submitted in {submitted:.2f} s)   ({load()})", flush=True)
                print(f"           CPU ms per job: {cpu}", flush=True)
                whole = (after["postgres (whole server)"] - before["postgres (whole server)"]) / args.jobs * 1000
                print("           of which PostgreSQL's backends serving: " + ", ".join(
                    f"{name} {ms:.2f}" for name, ms in served.items() if ms > 0.005)
                      + f"; the rest (other backends and the server's own processes) {whole - sum(served.values()):.2f}",
                      flush=True)
            if rates["exportd"] and rates["peer"] and len(rates["exportd"]) == len(rates["peer"]):
                print(f"  round {number + 1}: exportd / peer {rates['exportd'][-1] / rates['peer'][-1]:.2f}x",
                      flush=True)

        print("-- read back")
        for line in await check_exportd(dsn, sides["exportd"].job_ids, exportd_seen):
            print(line)
        for line in await check_peer(dsn, sides["peer"].job_ids, peer_seen):
            print(line)
        print("-- result")
        exportd_rate = statistics.median(rates["exportd"])
        peer_rate = statistics.median(rates["peer"])
        print(f"  exportd {exportd_rate:7.1f} jobs/s (median of {', '.join(f'{r:.1f}' for r in rates['exportd'])})")
        print(f"  peer    {peer_rate:7.1f} jobs/s (median of {', '.join(f'{r:.1f}' for r in rates['peer'])})")
        if rates["floor"]:
            floor = statistics.median(rates["floor"])
            print(f"  celery no-op floor {floor:7.1f} tasks/s (median of {', '.join(f'{r:.1f}' for r in rates['floor'])});"
                  f" exportd {exportd_rate / floor:.2f}x of it, peer {peer_rate / floor:.2f}x")
        ratio = exportd_rate / peer_rate
        print(f"  exportd / peer: {ratio:.2f}x (target >= {TARGET}x) {verdict(ratio, TARGET, lower_is_better=False)}"
              f"   ({load()})")
        if FAULTS:
            print(f"  READ BACK FAILED for {', '.join(FAULTS)}: the figures above do not count")
    finally:
        for client in clients:
            try:
                await client.disconnect()
            except Exception:  # noqa: BLE001 - tearing down
                pass
        for http in https:
            await http.aclose()
        for process in [*peers, node]:
            stop(process)
        if supervisor is not None:
            supervisor.send_signal(signal.SIGTERM)
            supervisor.wait(60)
        redis.kill()
        redis.wait()
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        folder.cleanup()


def noop_floor(jobs: int, concurrency: int, nice: int) -> float:
    import _celery_noop

    return _celery_noop.measure(jobs, concurrency=concurrency, nice=nice).per_second


async def admin_in(dsn: str, statement: str) -> None:
    connection = await asyncpg.connect(dsn, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


if __name__ == "__main__":
    asyncio.run(main())
