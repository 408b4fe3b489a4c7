#!/usr/bin/env python3
"""Run an exportd cluster on this host: N API nodes (`exportd serve`) and M workers (`exportd worker`).

    EXPORTD_DATABASE_URL=postgresql+asyncpg://exportd@db/exportd \\
    EXPORTD_BROKER_URL=redis://127.0.0.1:6379/0 \\
    EXPORTD_SECRET_KEY=... EXPORTD_STORAGE_DIR=/srv/exportd-storage \\
    python deploy/cluster.py --api-nodes 2 --workers 2 --port 8000

It applies the migrations once, starts the API nodes on ports PORT, PORT+1, …
(``--port 0``: free ports), starts the workers, waits until every API node
answers ``/api/readyz`` and every worker is ready, writes what it started to
``--state-file`` (JSON: each node's URL and process id) and stays in the
foreground. Ctrl-C or SIGTERM stops them all. Each process runs in a process
group of its own and logs to ``--log-dir``. On several machines, run the same
commands this script runs (printed at start) with the same environment.
See docs/deploy.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REQUIRED = ("EXPORTD_DATABASE_URL", "EXPORTD_BROKER_URL", "EXPORTD_SECRET_KEY")


def exportd_command() -> list[str]:
    """`exportd` next to this Python, else on PATH."""
    beside = Path(sys.executable).with_name("exportd")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("exportd")
    if found is None:
        sys.exit("cannot find the exportd command (pip install exportd)")
    return [found]


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/readyz", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_until(predicate, timeout: float, what: str, processes: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        for process in processes:
            if process.poll() is not None:
                raise SystemExit(f"{what}: process {process.pid} exited with {process.returncode} (see the logs)")
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def stop_all(processes: list[subprocess.Popen], grace: float = 15.0) -> None:
    for process in processes:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api-nodes", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=None, help="exports at once per worker")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="first API node's port (0: free ports)")
    parser.add_argument("--log-dir", type=Path, default=Path("exportd-logs"))
    parser.add_argument("--state-file", type=Path, default=None)
    args = parser.parse_args()

    missing = [name for name in REQUIRED if not os.environ.get(name)]
    if missing:
        sys.exit(f"set {', '.join(missing)} (see docs/deploy.md)")
    exportd = exportd_command()
    args.log_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run([*exportd, "migrate"], check=True, stdout=subprocess.DEVNULL)

    processes: list[subprocess.Popen] = []
    state: dict = {"api": [], "workers": [], "supervisor": os.getpid()}

    def start(name: str, command: list[str]) -> subprocess.Popen:
        print(f"{name}: {' '.join(command)}", flush=True)
        log = open(args.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        processes.append(process)
        return process

    def on_signal(signum, _frame) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        for number in range(args.api_nodes):
            port = free_port(args.host) if args.port == 0 else args.port + number
            process = start(f"api-{number + 1}", [*exportd, "serve", "--host", args.host, "--port", str(port)])
            state["api"].append({"name": f"api-{number + 1}", "url": f"http://{args.host}:{port}", "pid": process.pid})
        for number in range(args.workers):
            command = [*exportd, "worker"]
            if args.concurrency:
                command += ["--concurrency", str(args.concurrency)]
            process = start(f"worker-{number + 1}", command)
            state["workers"].append({"name": f"worker-{number + 1}", "pid": process.pid,
                                     "log": str(args.log_dir / f"worker-{number + 1}.log")})
        for node in state["api"]:
            wait_until(lambda node=node: ready(node["url"]), 60, f"{node['name']} to be ready", processes)
        for worker in state["workers"]:
            log = Path(worker["log"])
            wait_until(lambda log=log: b" ready." in log.read_bytes(), 60, f"{worker['name']} to be ready", processes)
        if args.state_file is not None:
            temporary = args.state_file.with_suffix(".tmp")
            temporary.write_text(json.dumps(state))
            temporary.replace(args.state_file)
        print(json.dumps(state), flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        stop_all(processes)


if __name__ == "__main__":
    main()
