"""Exports yield the CPU: a worker's prefork children, every thread of them, run niced by
EXPORTD_EXPORT_NICE (default 10); the API nodes, which answer the requests, keep their priority."""

from __future__ import annotations

import os
from pathlib import Path

from tests.cluster.support import Cluster, children, proc_stat
from tests.conftest import eventually

DEFAULT_NICE = 10


def thread_niceness(pid: int) -> set[int]:
    return {int(proc_stat(task / "stat")[16]) for task in Path(f"/proc/{pid}/task").iterdir()}


async def test_worker_children_run_niced_and_api_nodes_keep_their_priority(cluster: Cluster):
    base = os.nice(0)  # the cluster's processes start at this test's niceness
    for worker in cluster.workers:
        await eventually(lambda worker=worker: children(worker.pid), timeout=30, message="the prefork children")
        for child in children(worker.pid):
            assert thread_niceness(child) == {min(19, base + DEFAULT_NICE)}, (worker.name, child)
        assert thread_niceness(worker.pid) == {base}  # the Celery parent only hands out tasks
    for node in cluster.api:
        assert thread_niceness(node.pid) == {base}, node.name
