"""ExportdClient: the async Python SDK of exportd (HTTP with httpx, events with python-socketio).

    async with ExportdClient("http://127.0.0.1:8000") as client:
        await client.login("ada@example.com", "correct horse")
        job = await client.start_export(project_id, ExportOptions(metrics_formats=["csv"]))
        async for event in client.watch(job):
            print(event.seq, event.type, getattr(event, "progress", ""))
        saved = await client.auto_download(job, "export.zip")   # None if cancelled, failed, …

Per job the client keeps one `JobState` (``client.tracker(job)``): every event,
status poll and cancel answer goes through it, so duplicates and stale events
are dropped, gaps are filled from the store, a terminal status is final, and a
job this client was asked to cancel is never auto-downloaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote, unquote

import httpx
import socketio
from pydantic import ValidationError

from exportd.client.errors import (
    ConnectionFailed,
    ExportdError,
    ExportGone,
    ExportNotCancellable,
    ExportNotReady,
    ExportStillActive,
    FinishedBeforeCancel,
    IncompleteDownload,
    JobNotFound,
    ServerError,
    Unauthorized,
    error_from,
)
from exportd.client.importer import ImportSummary, plan_import, run_import
from exportd.client.models import CancelResult, Job, Project, User
from exportd.client.state import JobState, Snapshot
from exportd.domain.events import EventBase, parse_event
from exportd.domain.jobs import JobStatus
from exportd.domain.options import ExportOptions

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0  #: status poll while the socket is down
RECONCILE_SECONDS = 5.0  #: status check while the socket is up, in case the last event was lost
SOCKET_WAIT_SECONDS = 5.0
OUTAGE_SECONDS = 120.0  #: how long a watch keeps polling a server it cannot reach before it gives up
_LOOKUP_SEQ = 2**31  #: an afterSeq past any job's log: a sync that returns the job and no events

_JOB_ROUTES = {"NOT_FOUND": JobNotFound}
_DOWNLOAD = {"NOT_FOUND": JobNotFound, "GONE": ExportGone, "CONFLICT": ExportNotReady}


class _Outage:
    """Connection failures a watch rides out (the server restarting), until they last too long."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.since: float | None = None

    @contextlib.contextmanager
    def tolerated(self):
        try:
            yield
        except (ConnectionFailed, ServerError) as error:
            now = time.monotonic()
            self.since = self.since or now
            if now - self.since > self.limit:
                raise
            log.info("exportd unreachable (%s); trying again", error)
        else:
            self.since = None


class _Signal:
    """A note from the socket to every running watch: it connected, or it dropped."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


CONNECTED, DISCONNECTED = _Signal("connected"), _Signal("disconnected")

JobRef = Job | str


class ExportdClient:
    def __init__(self, url: str, *, token: str | None = None, timeout: float = 30.0,
                 poll_interval: float = POLL_SECONDS, reconcile_interval: float = RECONCILE_SECONDS,
                 realtime: bool = True, outage_timeout: float = OUTAGE_SECONDS,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        """`realtime=False` never opens a socket: `watch` then polls (every `poll_interval` seconds).

        A watch rides out a server it cannot reach (it keeps polling) for `outage_timeout` seconds.
        """
        self.url = url.rstrip("/")
        self.token = token
        self.token_expires_at: str | None = None
        self.poll_interval = poll_interval
        self.reconcile_interval = reconcile_interval
        self.realtime = realtime
        self.outage_timeout = outage_timeout
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout, transport=transport,
                                       headers={"Accept": "application/json"})
        self._sio: socketio.AsyncClient | None = None
        self._socket_lock = asyncio.Lock()
        self._inboxes: dict[str, set[asyncio.Queue]] = {}
        self._states: dict[str, JobState] = {}
        self._projects: dict[str, str] = {}  #: job id → project id, for every job this client has seen

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._sio is not None:  # even when not connected: this also closes its HTTP session
            with contextlib.suppress(Exception):
                await self._sio.disconnect()
        await self._http.aclose()

    # -- accounts and projects ---------------------------------------------------------------------------------

    async def login(self, email: str, password: str) -> str:
        """Log in; the client keeps the token (``client.token``) and returns it."""
        body = (await self._request("POST", "/api/auth/login", json={"email": email, "password": password},
                                    authenticated=False)).json()
        self.token = body["token"]
        self.token_expires_at = body.get("expiresAt")
        return self.token

    async def me(self) -> User:
        return User.model_validate((await self._request("GET", "/api/auth/me")).json()["user"])

    async def projects(self) -> list[Project]:
        body = (await self._request("GET", "/api/projects")).json()
        return [Project.model_validate(project) for project in body["projects"]]

    async def create_project(self, name: str) -> Project:
        body = (await self._request("POST", "/api/projects", json={"name": name})).json()
        return Project.model_validate(body)

    async def upload_images(self, project_id: str, images: Sequence[str | os.PathLike[str] | tuple[str, bytes]], *,
                            coco: str | os.PathLike[str] | tuple[str, bytes] | None = None,
                            masks: Sequence[str | os.PathLike[str] | tuple[str, bytes]] | None = None,
                            segmentation: Mapping[str, Any] | None = None,
                            class_name: str = "cell") -> dict[str, Any]:
        """One upload request: images, with polygons from a COCO file, label images or JSON; all or nothing.

        Files are paths or ``(name, bytes)``. Returns the server's answer ``{images, skipped, cells,
        warnings}``; a refused request raises `BadRequest` whose ``details["rejected"]`` names every
        refused file with its reason (nothing was stored).
        """
        files = [("files", _file(image)) for image in images]
        if coco is not None:
            files.append(("coco", _file(coco)))
        files += [("masks", _file(mask)) for mask in masks or []]
        data: dict[str, str] = {"className": class_name}
        if segmentation is not None:
            data["segmentation"] = json.dumps(segmentation)
        response = await self._request("POST", f"/api/projects/{quote(project_id)}/images", files=files, data=data)
        return response.json()

    async def import_images(self, project_id: str, images: Iterable[str | os.PathLike[str]], *,
                            coco: str | os.PathLike[str] | None = None, masks: str | os.PathLike[str] | None = None,
                            class_name: str = "cell",
                            on_batch: Callable[[int, ImportSummary], None] | None = None) -> ImportSummary:
        """Import image files and folders, with polygons from a COCO file or a folder of label images.

        Sent a few images per request; a file the server refuses is named in the summary with its
        reason and the rest of its batch is sent again without it. Images already in the project are
        skipped, so running the same import twice stores nothing twice. `on_batch(images, summary)`
        is called after each batch (for a progress bar).
        """
        plan = plan_import(images, coco=coco, masks=masks)
        return await run_import(self, project_id, plan, class_name=class_name, on_batch=on_batch)

    async def formats(self) -> dict[str, Any]:
        return (await self._request("GET", "/api/export/formats")).json()

    # -- jobs ----------------------------------------------------------------------------------------------------

    async def start_export(self, project_id: str, options: ExportOptions | Mapping[str, Any] | None = None, *,
                           project_name: str | None = None, idempotency_key: str | None = None) -> Job:
        """Start an export (202). With the same `idempotency_key`, a retry returns the same job."""
        body: dict[str, Any] = {}
        if options is not None:
            body["options"] = options.to_json() if isinstance(options, ExportOptions) else dict(options)
        if project_name is not None:
            body["projectName"] = project_name
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        response = await self._request("POST", f"/api/projects/{quote(project_id)}/export", json=body,
                                       headers=headers)
        return self._learn(Job.model_validate(response.json()))

    async def status(self, job: JobRef, project_id: str | None = None) -> Job:
        """The job as the server stands now; the job's tracker learns it too."""
        job_id, project_id = await self._locate(job, project_id)
        response = await self._request("GET", _job_path(project_id, job_id, "status"), refine=_JOB_ROUTES)
        current = self._learn(Job.model_validate(response.json()))
        self.tracker(job_id).observe(Snapshot.of(current))
        return current

    async def events(self, job: JobRef, project_id: str | None = None, *, after: int = 0) -> list[EventBase]:
        """The stored events of a job after seq `after`, typed, in seq order."""
        job_id, project_id = await self._locate(job, project_id)
        response = await self._request("GET", _job_path(project_id, job_id, "events"), params={"after": after},
                                       refine=_JOB_ROUTES)
        return [parse_event(payload) for payload in response.json()["events"]]

    async def history(self, project_id: str, limit: int = 20) -> list[Job]:
        response = await self._request("GET", f"/api/projects/{quote(project_id)}/export/history",
                                       params={"limit": limit})
        return [self._learn(Job.model_validate(job)) for job in response.json()["jobs"]]

    async def cancel(self, job: JobRef, project_id: str | None = None) -> CancelResult:
        """Cancel a pending or processing export; from now on this client never auto-downloads it.

        Raises `FinishedBeforeCancel` (with ``.job``) when the export had already completed: it is
        kept, and downloading or discarding it is the caller's call. Cancelling twice returns the
        same ``cancelled_at``.
        """
        job_id, project_id = await self._locate(job, project_id)
        state = self.tracker(job_id)
        state.request_cancel()
        try:
            response = await self._request("POST", _job_path(project_id, job_id, "cancel"),
                                           refine={**_JOB_ROUTES, "CONFLICT": ExportNotCancellable})
        except ExportNotCancellable as error:
            raise self._refused_cancel(state, error) from None
        result = CancelResult.model_validate(response.json())
        self._learn(result.job)
        state.cancel_answered(Snapshot.of(result.job))
        return result

    def _refused_cancel(self, state: JobState, error: ExportdError) -> ExportdError:
        view = error.details.get("job")
        if not isinstance(view, dict):
            return error
        job = self._learn(Job.model_validate(view))
        state.cancel_answered(Snapshot.of(job))
        details = {**error.details, "job": job}
        if job.status == JobStatus.COMPLETED:
            refused: ExportdError = FinishedBeforeCancel(**details)
        else:
            refused = ExportNotCancellable(error.message, **details)
        refused.status_code, refused.body = getattr(error, "status_code", 409), getattr(error, "body", {})
        return refused

    async def discard(self, job: JobRef, project_id: str | None = None) -> None:
        """Delete a finished export and its file (a running one: `ExportStillActive`)."""
        job_id, project_id = await self._locate(job, project_id)
        await self._request("DELETE", _job_path(project_id, job_id),
                            refine={**_JOB_ROUTES, "CONFLICT": ExportStillActive})

    async def download_token(self, job: JobRef, project_id: str | None = None) -> dict[str, Any]:
        """A short-lived token (``{token, expiresAt, url}``) for a download without the bearer header."""
        job_id, project_id = await self._locate(job, project_id)
        return (await self._request("POST", _job_path(project_id, job_id, "download-token"), refine=_DOWNLOAD)).json()

    # -- download ------------------------------------------------------------------------------------------------

    async def download(self, job: JobRef, path: str | os.PathLike[str], project_id: str | None = None) -> Path:
        """Save the ZIP of a completed export at `path` (or in it, under the server's name, if it is a folder).

        The bytes go to a temporary file next to the target, renamed over `path` only once all of
        them arrived: no partial file is ever at `path`. A cancelled or expired export raises
        `ExportGone`; one that is not completed, `ExportNotReady`.
        """
        return await self._download(job, Path(path), project_id, auto=False)

    async def auto_download(self, job: JobRef, path: str | os.PathLike[str],
                            project_id: str | None = None) -> Path | None:
        """Download only if the server's own status says completed and nobody asked this client to cancel.

        Returns the path written, or None when the job may not be auto-downloaded (not completed,
        cancelled locally at any point, or already downloaded by this client).
        """
        job_id, project_id = await self._locate(job, project_id)
        state = self.tracker(job_id)
        if state.cancel_requested or state.downloaded:
            return None
        await self.status(job_id, project_id)
        if not state.may_auto_download:
            return None
        return await self._download(job_id, Path(path), project_id, auto=True)

    async def _download(self, job: JobRef, target: Path, project_id: str | None, *, auto: bool) -> Path | None:
        job_id, project_id = await self._locate(job, project_id)
        state = self.tracker(job_id)
        folder = target if target.is_dir() else target.parent
        if not folder.is_dir():
            raise FileNotFoundError(f"No such folder: {folder}")
        temp: Path | None = None
        try:
            async with self._http.stream("GET", _job_path(project_id, job_id, "download"),
                                         headers=self._auth_headers()) as response:
                if not response.is_success:
                    await response.aread()
                    raise error_from(response.status_code, _json(response),
                                     retry_after=response.headers.get("Retry-After"), refine=_DOWNLOAD)
                if target.is_dir():
                    target = target / _attachment_name(response, f"export-{job_id}.zip")
                expected = int(response.headers.get("Content-Length", "-1"))
                temp, handle = _open_temporary(target)
                written = 0
                with handle:
                    async for chunk in response.aiter_bytes():
                        handle.write(chunk)
                        written += len(chunk)
                    handle.flush()
                    os.fsync(handle.fileno())
            # From here on nothing awaits: a cancelled task stops before the rename, or not at all.
            if expected >= 0 and written != expected:
                raise IncompleteDownload(f"Got {written} of {expected} bytes; nothing was written.")
            if auto and state.cancel_requested:  # the user cancelled while the bytes were coming
                return None
            os.replace(temp, target)
            temp = None
        except httpx.TransportError as error:
            raise ConnectionFailed(f"The download from {self.url} broke off: {error}") from error
        finally:
            if temp is not None:
                temp.unlink(missing_ok=True)
        state.mark_downloaded()
        return target

    # -- events --------------------------------------------------------------------------------------------------

    def tracker(self, job: JobRef) -> JobState:
        """The one `JobState` this client keeps for a job."""
        job_id = job.id if isinstance(job, Job) else job
        if job_id not in self._states:
            self._states[job_id] = JobState(job_id)
        return self._states[job_id]

    @property
    def socket_connected(self) -> bool:
        return self._sio is not None and self._sio.connected

    async def watch(self, job: JobRef, project_id: str | None = None) -> AsyncIterator[EventBase]:
        """The job's events, typed, each once, in seq order, ending after its terminal event.

        Live events come over the socket; a gap is filled from the store (``export:sync``, or
        ``GET …/events`` when the socket is down). While the socket is down the status is polled
        every `poll_interval` seconds; while it is up it is still reconciled every
        `reconcile_interval` seconds, so a lost last event is found too.
        """
        job_id, project_id = await self._locate(job, project_id)
        state = self.tracker(job_id)
        inbox: asyncio.Queue = asyncio.Queue()
        self._inboxes.setdefault(job_id, set()).add(inbox)
        outage = _Outage(self.outage_timeout)
        try:
            await self._connect_socket()
            # What happened before we listened: the store has it all.
            for event in state.receive_all(await self.events(job_id, project_id, after=state.last_seq)).applied:
                yield event
            next_check = time.monotonic() + self._interval()
            fill_now = True
            while not state.done:
                if fill_now and state.gap_after is not None:
                    applied: tuple[EventBase, ...] = ()
                    with outage.tolerated():
                        applied = (await self._fill(job_id, project_id, state)).applied
                    fill_now = bool(applied)  # it moved: fill again at once if a gap remains
                    for event in applied:
                        yield event
                    continue
                item = None
                with contextlib.suppress(TimeoutError):
                    # not asyncio.wait_for: on Python 3.11 it returns the item instead of raising when the
                    # watch is cancelled as the item arrives, and the watch would go on after its caller stopped it
                    async with asyncio.timeout(max(0.0, next_check - time.monotonic())):
                        item = await inbox.get()
                if isinstance(item, EventBase):
                    receipt = state.receive(item)
                    fill_now = receipt.fetch_after is not None
                    for event in receipt.applied:
                        yield event
                    continue
                if item is DISCONNECTED:
                    next_check = min(next_check, time.monotonic() + self.poll_interval)
                    continue
                # Time to reconcile (or the socket just came back): the server's word on the status.
                next_check = time.monotonic() + self.poll_interval
                with outage.tolerated():
                    if not self.socket_connected:
                        await self._connect_socket()
                    await self.status(job_id, project_id)
                    fill_now = True
                    next_check = time.monotonic() + self._interval()
        finally:
            inboxes = self._inboxes.get(job_id)
            if inboxes is not None:
                inboxes.discard(inbox)
                if not inboxes:
                    del self._inboxes[job_id]

    def _interval(self) -> float:
        return self.reconcile_interval if self.socket_connected else self.poll_interval

    async def _fill(self, job_id: str, project_id: str, state: JobState):
        """Fetch the events after the last applied seq and feed them: over the socket if it is up."""
        after = state.gap_after or 0
        if self.socket_connected:
            try:
                ack = await self._sio.call("export:sync", {"jobId": job_id, "afterSeq": after},
                                           timeout=SOCKET_WAIT_SECONDS)
                if isinstance(ack, dict) and ack.get("success") is not False and "events" in ack:
                    if isinstance(ack.get("job"), dict):
                        state.observe(ack["job"])
                    return state.receive_all(parse_event(payload) for payload in ack["events"])
                if isinstance(ack, dict) and ack.get("code") not in (None, "INTERNAL_ERROR"):
                    raise error_from(_status_of(ack["code"]), ack, refine=_JOB_ROUTES)
            except (socketio.exceptions.SocketIOError, TimeoutError):
                log.debug("export:sync over the socket failed; using HTTP")
        return state.receive_all(await self.events(job_id, project_id, after=after))

    # -- the socket ---------------------------------------------------------------------------------------------

    async def _connect_socket(self) -> bool:
        """Connect (or reconnect) the socket; False when it cannot be reached now (then watches poll)."""
        if not self.realtime or self.token is None:
            return False
        async with self._socket_lock:
            if self.socket_connected:
                return True
            if self._sio is None:
                self._sio = self._new_socket()
            try:
                await self._sio.connect(self.url, auth={"token": self.token}, transports=["websocket"],
                                        wait_timeout=SOCKET_WAIT_SECONDS)
            except (socketio.exceptions.ConnectionError, OSError, ValueError) as error:
                log.info("socket unavailable (%s); polling instead", error)
                with contextlib.suppress(Exception):
                    await self._sio.disconnect()
                return False
            return True

    def _new_socket(self) -> socketio.AsyncClient:
        sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)

        @sio.on("connect")
        async def _connected() -> None:
            self._tell_all(CONNECTED)

        @sio.on("disconnect")
        async def _disconnected(*reason: Any) -> None:
            self._tell_all(DISCONNECTED)

        @sio.on("*")
        async def _event(name: str, data: Any = None) -> None:
            if not name.startswith("export:") or not isinstance(data, dict):
                return
            inboxes = self._inboxes.get(str(data.get("jobId")))
            if not inboxes:
                return
            try:
                event = parse_event(data)
            except ValidationError:
                log.warning("ignoring a malformed %s event", name)
                return
            for inbox in inboxes:
                inbox.put_nowait(event)

        return sio

    def _tell_all(self, note: _Signal) -> None:
        for inboxes in self._inboxes.values():
            for inbox in inboxes:
                inbox.put_nowait(note)

    # -- plumbing -----------------------------------------------------------------------------------------------

    async def locate(self, job_id: str) -> str:
        """The project of a job known only by its id, asked over the socket (``export:sync`` needs no project)."""
        if job_id in self._projects:
            return self._projects[job_id]
        if not await self._connect_socket():
            await self._request("GET", "/api/healthz", authenticated=False)  # unreachable: says so
            raise ConnectionFailed("The job's project is unknown and the socket is unavailable to look it up; "
                                   "pass the project id.")
        ack = await self._sio.call("export:sync", {"jobId": job_id, "afterSeq": _LOOKUP_SEQ},
                                   timeout=SOCKET_WAIT_SECONDS)
        if not isinstance(ack, dict) or ack.get("success") is False or not isinstance(ack.get("job"), dict):
            code = ack.get("code") if isinstance(ack, dict) else None
            raise error_from(_status_of(code), ack, refine=_JOB_ROUTES)
        return self._learn(Job.model_validate(ack["job"])).project_id

    async def _locate(self, job: JobRef, project_id: str | None) -> tuple[str, str]:
        if isinstance(job, Job):
            return job.id, project_id or job.project_id
        if project_id is not None:
            self._projects.setdefault(job, project_id)
            return job, project_id
        return job, await self.locate(job)

    def _learn(self, job: Job) -> Job:
        self._projects[job.id] = job.project_id
        return job

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def _request(self, method: str, path: str, *, authenticated: bool = True,
                       refine: dict[str, type[ExportdError]] | None = None,
                       headers: Mapping[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        if authenticated and self.token is None:
            raise Unauthorized("Not logged in.")
        all_headers = {**(self._auth_headers() if authenticated else {}), **(headers or {})}
        try:
            response = await self._http.request(method, path, headers=all_headers, **kwargs)
        except httpx.TransportError as error:
            raise ConnectionFailed(f"Cannot reach {self.url}: {error or type(error).__name__}") from error
        if response.is_success:
            if response.status_code != 204 and "json" not in response.headers.get("Content-Type", ""):
                raise ServerError(f"{method} {path} answered {response.status_code} without JSON.")
            return response
        raise error_from(response.status_code, _json(response), retry_after=response.headers.get("Retry-After"),
                         refine=refine)


def _file(source: str | os.PathLike[str] | tuple[str, bytes]) -> tuple[str, bytes, str]:
    if isinstance(source, tuple):
        name, data = source
    else:
        name, data = Path(source).name, Path(source).read_bytes()
    return name, data, "application/octet-stream"


def _job_path(project_id: str, job_id: str, tail: str = "") -> str:
    path = f"/api/projects/{quote(project_id)}/export/{quote(job_id)}"
    return f"{path}/{tail}" if tail else path


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"error": response.text[:200] or response.reason_phrase}


_STATUS_BY_CODE = {"BAD_REQUEST": 400, "UNAUTHORIZED": 401, "FORBIDDEN": 403, "NOT_FOUND": 404, "CONFLICT": 409,
                   "GONE": 410, "RATE_LIMIT_EXCEEDED": 429}


def _status_of(code: Any) -> int:
    return _STATUS_BY_CODE.get(code, 500) if isinstance(code, str) else 500


def _attachment_name(response: httpx.Response, default: str) -> str:
    disposition = response.headers.get("Content-Disposition", "")
    match = re.search(r"filename\*=UTF-8''([^;]+)", disposition) or re.search(r'filename="([^"]+)"', disposition)
    name = unquote(match.group(1)) if match else default
    return Path(name).name or default  # never a path: only the last component


def _open_temporary(target: Path):
    """A new file next to `target` (same folder, so the rename is atomic), created with the usual umask."""
    for _ in range(100):
        temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        return temp, os.fdopen(fd, "wb")
    raise FileExistsError(f"Could not create a temporary file next to {target}")
