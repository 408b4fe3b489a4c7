"""The API under exports that saturate the CPU: cancel and status answers against an idle server's health check.

One real ``exportd serve`` subprocess per ``--nice`` value (its
``EXPORTD_EXPORT_NICE``; 0: exports run at the API's priority), each with
production settings (pipelines and a process pool of the CPU count, the
default export options: overlays and the Excel workbook) except cheap password
hashing, which only shortens the set-up. On each, ``--users`` users own a
project of ``--images`` synthetic 512 × 384 images. The servers take turns,
``--rounds`` times, so that other work on the machine weighs on each alike;
in each turn, on one server while the others sit idle:

1. Idle: ``--probes`` ``GET /api/healthz`` one after another, 10 ms apart:
   the baseline.
2. Load: every user, over and over, starts an export; then either (one time
   in two) cancels it after a random 0-2 s, or polls its status every
   ``--poll`` seconds until it ends and downloads the ZIP when it completed.
   With one active export allowed per user and far more users than cores, the
   queue never empties and the CPU stays saturated. After ``--warmup``
   seconds, for ``--seconds`` seconds, every cancel and status round trip is
   measured, and a probe sends ``GET /api/healthz`` every 10 ms. Then every
   user cancels what it still has running (not measured) and waits for it to
   end, so the next turn starts on an idle machine.

Printed per ``--nice`` value, over its turns: the idle health check's p99;
under load, the p50/p99 of cancel, status and health check; the exports
started, completed and cancelled; the machine's CPU use while measuring (from
``/proc/stat``, every process of the machine: other work counts too). Target:
cancel p99 ≤ 10 × the idle health check's p99. The load generator runs on the
same cores as the servers.

Run: ``.venv/bin/python bench/saturation.py [--nice 0 10] [--users 80] [--rounds 2] [--seconds 15]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import PASSWORD, header, percentile, spread_line, verdict

from exportd.synthetic import synthetic_project

RATIO_TARGET = 10.0
TERMINAL = ("completed", "failed", "cancelled")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine so far."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


class Figures:
    def __init__(self) -> None:
        self.measuring = False
        self.cancel: list[float] = []
        self.status: list[float] = []
        self.healthz: list[float] = []
        self.idle: list[float] = []
        self.busy = self.total = 0
        self.started = self.completed = self.cancelled = self.downloaded = self.refused = 0

    def note(self, kind: str, seconds: float) -> None:
        if self.measuring:
            getattr(self, kind).append(seconds)


async def timed(figures: Figures, kind: str, request) -> httpx.Response:
    began = time.perf_counter()
    answer = await request
    figures.note(kind, time.perf_counter() - began)
    return answer


async def user_loop(url: str, token: str, project_id: str, args, figures: Figures, until: float, seed: int) -> None:
    rng = random.Random(seed)
    base = f"/api/projects/{project_id}/export"
    headers = {"Authorization": f"Bearer {token}"}
    active: list[str] = []  # the job this user may still have running
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=headers) as http:
        try:
            while time.monotonic() < until:
                answer = await http.post(base, json={})
                if answer.status_code != 202:
                    figures.refused += 1
                    await asyncio.sleep(0.5)
                    continue
                job_id = answer.json()["id"]
                active[:] = [job_id]
                figures.started += 1
                if rng.random() < 0.5:
                    await asyncio.sleep(rng.uniform(0, 2))
                    cancel = await timed(figures, "cancel", http.post(f"{base}/{job_id}/cancel"))
                    if cancel.status_code == 200:
                        figures.cancelled += 1
                        continue
                while time.monotonic() < until:  # a late cancel finds it ended: poll it to its end
                    status = await timed(figures, "status", http.get(f"{base}/{job_id}/status"))
                    job = status.json()
                    if job["status"] in TERMINAL:
                        if job["status"] == "completed":
                            figures.completed += 1
                            async with http.stream("GET", f"{base}/{job_id}/download") as download:
                                async for _ in download.aiter_bytes():
                                    pass
                            figures.downloaded += 1
                        break
                    await asyncio.sleep(args.poll)
        finally:  # leave nothing running for the next turn
            for job_id in active:
                await http.post(f"{base}/{job_id}/cancel")
                while (await http.get(f"{base}/{job_id}/status")).json()["status"] not in TERMINAL:
                    await asyncio.sleep(0.2)


async def probe(http: httpx.AsyncClient, count: int | None, figures: Figures | None, until: float | None) -> list[float]:
    seconds = []
    while (count is None or len(seconds) < count) and (until is None or time.monotonic() < until):
        began = time.perf_counter()
        (await http.get("/api/healthz")).raise_for_status()
        took = time.perf_counter() - began
        if figures is None:
            seconds.append(took)
        else:
            figures.note("healthz", took)
        await asyncio.sleep(0.01)
    return seconds


async def wait_until_serving(http: httpx.AsyncClient) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if (await http.get("/api/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("exportd did not start")
        await asyncio.sleep(0.1)


async def set_up(http: httpx.AsyncClient, args) -> list[tuple[str, str]]:
    """`--users` users, each with a project of `--images` images: [(token, project id)]."""
    files, segmentation = [], {}
    for name, png, polygons in synthetic_project(count=args.images, seed=5):
        files.append(("files", (name, png, "image/png")))
        segmentation[name] = polygons
    users = []
    for n in range(args.users):
        email = f"user{n}@example.com"
        await http.post("/api/auth/register", json={"email": email, "password": PASSWORD})
        token = (await http.post("/api/auth/login", json={"email": email, "password": PASSWORD})).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        project_id = (await http.post("/api/projects", json={"name": f"Saturation {n}"}, headers=auth)).json()["id"]
        (await http.post(f"/api/projects/{project_id}/images", files=files, headers=auth,
                         data={"segmentation": json.dumps(segmentation)})).raise_for_status()
        users.append((token, project_id))
    return users


async def turn(http: httpx.AsyncClient, url: str, users, args, figures: Figures) -> None:
    """One idle baseline, then one load phase, on one server."""
    figures.idle += await probe(http, args.probes, None, None)
    end = time.monotonic() + args.warmup + args.seconds
    loops = [asyncio.create_task(user_loop(url, token, project_id, args, figures, end, n))
             for n, (token, project_id) in enumerate(users)]
    await asyncio.sleep(args.warmup)
    figures.measuring = True
    busy0, total0 = cpu_times()
    await probe(http, None, figures, end)
    busy1, total1 = cpu_times()
    figures.measuring = False
    figures.busy += busy1 - busy0
    figures.total += total1 - total0
    await asyncio.gather(*loops)


async def run(args: argparse.Namespace, root: Path) -> int:
    servers = {}
    figures = {nice: Figures() for nice in args.nice}
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    try:
        for nice in args.nice:
            port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORTD_")}
            env["EXPORTD_EXPORT_NICE"] = str(nice)
            env["EXPORTD_PASSWORD_HASH_FAST"] = "true"  # the set-up only: no request measured logs in
            exportd = Path(sys.executable).with_name("exportd")
            process = subprocess.Popen(
                [str(exportd), "serve", "--data-dir", str(root / f"nice-{nice}"), "--port", str(port)], env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            servers[nice] = (process, f"http://127.0.0.1:{port}")
        for nice, (_, url) in servers.items():
            async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
                await wait_until_serving(http)
                began = time.perf_counter()
                servers[nice] += (await set_up(http, args),)
                print(f"  EXPORTD_EXPORT_NICE={nice}: {args.users} users, each a project of {args.images} images, "
                      f"set up in {time.perf_counter() - began:.1f} s", flush=True)
        for round_ in range(1, args.rounds + 1):
            for nice, (_, url, users) in servers.items():
                async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
                    await turn(http, url, users, args, figures[nice])
                print(f"  round {round_}, EXPORTD_EXPORT_NICE={nice}: done", flush=True)
    finally:
        for process, *_ in servers.values():
            process.terminate()
        for process, *_ in servers.values():
            process.wait(30)
    for nice, figure in figures.items():
        print(f"EXPORTD_EXPORT_NICE={nice}, {args.rounds} turns of {args.seconds:.0f} s measured after "
              f"{args.warmup:.0f} s: {figure.started} exports started, {figure.completed} completed "
              f"({figure.downloaded} downloaded), {figure.cancelled} cancelled, {figure.refused} starts refused; "
              f"machine CPU busy {100 * figure.busy / max(1, figure.total):.0f}%")
        print(spread_line("idle: GET /api/healthz", figure.idle))
        print(spread_line("load: POST …/cancel", figure.cancel))
        print(spread_line("load: GET …/status", figure.status))
        print(spread_line("load: GET /api/healthz", figure.healthz))
        idle_p99 = percentile([s * 1000 for s in figure.idle], 99)
        cancel_p99 = percentile([s * 1000 for s in figure.cancel], 99)
        status_p99 = percentile([s * 1000 for s in figure.status], 99)
        ratio = cancel_p99 / idle_p99
        print(f"  cancel p99 {cancel_p99:.1f} ms / idle healthz p99 {idle_p99:.2f} ms = {ratio:.1f}x "
              f"(status {status_p99 / idle_p99:.1f}x); target <= {RATIO_TARGET:.0f}x: {verdict(ratio, RATIO_TARGET)}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nice", type=int, nargs="+", default=[0, 10],
                        help="EXPORTD_EXPORT_NICE of each server (0: exports at the API's priority)")
    parser.add_argument("--users", type=int, default=80)
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--poll", type=float, default=1.0)
    parser.add_argument("--probes", type=int, default=150)
    args = parser.parse_args()
    header(f"saturation: {args.users} users exporting, EXPORTD_EXPORT_NICE in {args.nice}, {args.rounds} turns each")
    with tempfile.TemporaryDirectory(prefix="exportd-bench-") as folder:
        return asyncio.run(run(args, Path(folder)))


if __name__ == "__main__":
    sys.exit(main())
