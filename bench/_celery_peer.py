"""The hand-written peer of ``cluster_throughput.py``: the same export as a plain Celery task, no guarantees.

What a team would write by hand on the same stack, with exportd's pipeline for
the ZIP:

* **the node** (``python bench/_celery_peer.py node --port P``): a bare
  python-socketio ``AsyncServer`` whose client manager is
  ``socketio.AsyncRedisManager`` (so emits from the workers reach its sockets),
  served by uvicorn, with one plain HTTP route, ``POST /jobs``, that inserts the
  job row (one INSERT on an asyncpg pool), emits ``export:queued`` to the
  owner's room and sends the Celery task. No authentication: a socket names its
  user in its ``auth``. uvicorn runs at its default log level, as ``exportd
  serve`` does (an access log line per request on each side).
* **the task** (``peer_export``, run by ``celery -A _celery_peer worker``,
  prefork): reads the job row, marks it ``processing`` with a plain UPDATE and
  emits ``export:started``; reads the project's images (the same query shape
  as exportd's snapshot, skipped polygons when there are none) and calls
  exportd's ``build_export`` with the job's options; writes throttled progress
  with plain UPDATEs (the same rule as exportd: at most one per progress
  interval, the first after one interval, so an empty export writes none);
  moves the ZIP to its final name, writes ``completed`` with a plain UPDATE and
  emits ``export:completed``. Every UPDATE is unguarded (``WHERE id = %s``),
  there are no event rows, no lease, no fencing, no sequence numbers. Emits go
  through python-socketio's write-only ``RedisManager``. The database is
  psycopg 3 on one autocommit connection per prefork child; Celery's defaults
  otherwise (early acks, prefetch 4), results ignored.

The job rows live in ``peer_jobs``, created ``LIKE export_jobs INCLUDING ALL``
in exportd's own database, so the rows and indexes are the same shape while
exportd's reaper and pending sweep never see them.

Configured through the environment: ``PEER_DSN`` (libpq DSN), ``PEER_BROKER``
(Redis URL of the broker), ``PEER_SIO_REDIS`` (Redis URL of the Socket.IO
manager), ``PEER_STORAGE`` (a folder), ``PEER_QUEUE``, ``PEER_NICE`` (added to
each prefork child's niceness), ``PEER_PROGRESS_INTERVAL`` (seconds).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from celery import Celery
from celery.signals import worker_process_init

QUEUE = os.environ.get("PEER_QUEUE", "exportd-bench-peer")
app = Celery("exportd_bench_peer", broker=os.environ.get("PEER_BROKER", "redis://127.0.0.1:6379/14"))
app.conf.update(task_ignore_result=True, worker_hijack_root_logger=False, broker_connection_retry_on_startup=True,
                task_default_queue=QUEUE)

_child: dict = {}


@worker_process_init.connect
def _start_child(**_kwargs) -> None:
    import psycopg
    import socketio

    nice = int(os.environ.get("PEER_NICE", "0"))
    if nice > 0:
        os.nice(nice)
    _child["db"] = psycopg.connect(os.environ["PEER_DSN"], autocommit=True)
    _child["sio"] = socketio.RedisManager(os.environ["PEER_SIO_REDIS"], write_only=True)
    _child["storage"] = Path(os.environ["PEER_STORAGE"])
    _child["interval"] = float(os.environ.get("PEER_PROGRESS_INTERVAL", "0.25"))


def _now() -> datetime:
    """Naive UTC, as exportd keeps its columns."""
    return datetime.now(UTC).replace(tzinfo=None)


class _Context:
    """The pipeline's StepContext: progress UPDATEs throttled as exportd throttles them, no cancel."""

    def __init__(self, job, emit) -> None:
        self.job = job
        self.emit = emit
        self.last = time.monotonic()  # the first report waits one interval, as exportd's

    def raise_if_cancelled(self) -> None:
        pass

    def advance(self, stage, current, total, percent, message="", item="") -> None:
        now = time.monotonic()
        if now - self.last < _child["interval"]:
            return
        self.last = now
        _child["db"].execute("UPDATE peer_jobs SET progress = %s, stage = %s, message = %s, updated_at = %s "
                             "WHERE id = %s", (round(percent, 2), stage, message, _now(), self.job["id"]))
        self.emit("export:progress", progress=round(percent, 2), stage=stage, current=current, total=total)

    def warn(self, message: str) -> None:
        pass

    def item_done(self) -> None:
        pass


@app.task(name="peer_export")
def peer_export(job_id: str) -> None:
    from exportd.domain.options import ExportOptions
    from exportd.export.pipeline import build_export
    from exportd.export.source import ProjectSnapshot

    db, sio = _child["db"], _child["sio"]
    row = db.execute("SELECT id, project_id, user_id, options, project_name, created_at FROM peer_jobs "
                     "WHERE id = %s", (job_id,)).fetchone()
    job = dict(zip(("id", "project_id", "user_id", "options", "project_name", "created_at"), row, strict=True))
    room = f"user:{job['user_id']}"

    def emit(event: str, **fields) -> None:
        sio.emit(event, {"jobId": job_id, "projectId": job["project_id"], "type": event,
                         "timestamp": _now().isoformat(), **fields}, room=room)

    started = _now()
    db.execute("UPDATE peer_jobs SET status = 'processing', started_at = %s, updated_at = %s WHERE id = %s",
               (started, started, job_id))
    emit("export:started", status="processing", startedAt=started.isoformat())
    images = db.execute("SELECT * FROM images WHERE project_id = %s ORDER BY position",
                        (job["project_id"],)).fetchall()
    if images:
        raise NotImplementedError("the peer exports projects without images only")
    snapshot = ProjectSnapshot(id=job["project_id"], name=job["project_name"], images=())
    folder = _child["storage"] / job_id
    folder.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    result = build_export(snapshot, ExportOptions.model_validate(job["options"]), folder, job_id=job_id,
                          generated_at=datetime.now(UTC), ctx=_Context(job, emit),
                          started_at=job["created_at"].replace(tzinfo=UTC))
    final = _child["storage"] / f"{job_id}.zip"
    os.replace(result.path, final)
    shutil.rmtree(folder, ignore_errors=True)
    done = _now()
    db.execute("UPDATE peer_jobs SET status = 'completed', progress = 100, completed_at = %s, updated_at = %s, "
               "file_path = %s, file_name = %s, export_size = %s, processing_time = %s WHERE id = %s",
               (done, done, str(final), final.name, result.size, round(time.monotonic() - began, 6), job_id))
    emit("export:completed", status="completed", completedAt=done.isoformat(), exportSize=result.size)


def node(port: int) -> None:
    """The bare python-socketio node with the one HTTP route that creates a job."""
    import json

    import asyncpg
    import socketio
    import uvicorn

    sio = socketio.AsyncServer(async_mode="asgi", client_manager=socketio.AsyncRedisManager(
        os.environ["PEER_SIO_REDIS"]), cors_allowed_origins=[])
    state: dict = {}

    @sio.event
    async def connect(sid, environ, auth=None):
        user = (auth or {}).get("user")
        if not user:
            return False
        await sio.enter_room(sid, f"user:{user}")
        return True

    async def http(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    state["pool"] = await asyncpg.create_pool(os.environ["PEER_DSN"], min_size=4, max_size=8)
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await state["pool"].close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"] == "/health":
            return await _answer(send, 200, {"status": "ok"})
        if scope["path"] != "/jobs" or scope["method"] != "POST":
            return await _answer(send, 404, {"error": "not found"})
        request = json.loads(body)
        job_id, now = str(uuid.uuid4()), _now()
        await state["pool"].execute(
            "INSERT INTO peer_jobs (id, project_id, user_id, status, seq, attempt, progress, options, project_name, "
            "created_at, updated_at) VALUES ($1, $2, $3, 'pending', 0, 0, 0, $4, $5, $6, $6)",
            job_id, request["projectId"], request["userId"], json.dumps(request.get("options") or {}),
            request["projectName"], now)
        await sio.emit("export:queued", {"jobId": job_id, "projectId": request["projectId"], "type": "export:queued",
                                         "status": "pending", "queuedAt": now.isoformat()},
                       room=f"user:{request['userId']}")
        peer_export.delay(job_id)
        return await _answer(send, 202, {"id": job_id, "status": "pending"})

    # uvicorn's default log level, the one ``exportd serve`` runs at: each side writes its access log line
    uvicorn.run(socketio.ASGIApp(sio, other_asgi_app=http), host="127.0.0.1", port=port, log_level="info",
                lifespan="on")


async def _answer(send, status: int, payload: dict) -> None:
    import json

    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "node":
        node(int(sys.argv[2]))
    else:
        sys.exit("usage: _celery_peer.py node PORT   (the worker: celery -A _celery_peer worker)")
