"""The client commands of ``exportd``: a running exportd, through the SDK.

``login``, ``logout``, ``projects``, ``export``, ``status``, ``cancel``,
``download``, ``discard``; ``exportd.cli`` registers them beside ``serve`` and
``migrate``. They read the server and token that ``login`` stored (see
``exportd.client.credentials``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

CLIENT_COMMANDS: list = []  #: in the order `exportd --help` lists them
console = Console()


def _command(function):
    CLIENT_COMMANDS.append(function)
    return function


err_console = Console(stderr=True)

EXIT_INTERRUPTED = 130  #: 128 + SIGINT, what shells report for Ctrl-C
ANNOTATION_FORMATS = ("coco", "yolo", "json", "masks", "geojson")
METRICS_FORMATS = ("excel", "csv", "json")
ProjectOption = Annotated[str | None, typer.Option(
    "--project", "-p", help="The job's project (default: remembered from `exportd export`, else looked up).")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]Error:[/bold red] {message}", highlight=False)
    return typer.Exit(code)


def _run_client(coroutine_function, *args):
    """Run one client command: errors by name become a clear message and exit code 1, never a traceback."""
    import httpx
    from pydantic import ValidationError

    from exportd.client import ConnectionFailed, ExportdError, ExportGone, FinishedBeforeCancel, Unauthorized

    try:
        return asyncio.run(coroutine_function(*args))
    except FinishedBeforeCancel as error:
        job_id = error.job.id if error.job is not None else "JOB_ID"
        raise _fail(f"{error.message} It is kept: download it with `exportd download {job_id} --out FILE`, "
                    f"or discard it with `exportd discard {job_id}`.") from None
    except Unauthorized as error:
        raise _fail(f"{error.message} Log in again with `exportd login`.") from None
    except ExportGone as error:
        raise _fail(f"{error.message} The export is no longer available.") from None
    except ConnectionFailed as error:
        raise _fail(error.message) from None
    except ExportdError as error:
        field = error.details.get("field")
        raise _fail(f"{error.message}" + (f" (field: {field})" if field and field not in error.message else "")) \
            from None
    except OSError as error:
        raise _fail(str(error)) from None
    except (httpx.HTTPError, ValidationError) as error:  # an answer that is not the contract's
        raise _fail(f"Unexpected answer from the server: {error}") from None


def _store():
    from exportd.client.credentials import CredentialStore

    return CredentialStore()


def _logged_in():
    credentials = _store().load()
    if credentials is None:
        raise _fail("Not logged in. Run `exportd login --server URL --email EMAIL` first.")
    return credentials


def _client(credentials, **kwargs):
    from exportd.client import ExportdClient

    return ExportdClient(credentials.server, token=credentials.token, **kwargs)


def _project_of(credentials, job_id: str, project: str | None) -> str | None:
    return project or credentials.jobs.get(job_id)


def _on_job(job_id: str, project: str | None, call):
    """As the logged-in user, run `await call(client, project_id)` for one job (see `_run_client`)."""
    credentials = _logged_in()

    async def run():
        async with _client(credentials) as client:
            return await call(client, _project_of(credentials, job_id, project))

    return _run_client(run)


@_command
def login(
    email: Annotated[str, typer.Option(prompt=True, help="Your account's email.")],
    server: Annotated[str, typer.Option(envvar="EXPORTD_SERVER", help="The exportd URL.")] = "http://127.0.0.1:8000",
    password: Annotated[str | None, typer.Option(
        envvar="EXPORTD_PASSWORD", help="Password (default: prompted, hidden).", show_default=False)] = None,
) -> None:
    """Log in to an exportd server and keep the token (file mode 0600) for the other commands."""
    from exportd.client.credentials import Credentials

    if not server.startswith(("http://", "https://")):
        raise typer.BadParameter("must start with http:// or https://", param_hint="--server")
    if password is None:
        password = typer.prompt("Password", hide_input=True)

    async def run():
        async with _client(Credentials(server=server, token="")) as client:
            await client.login(email, password)
            return client.token, client.token_expires_at

    token, expires_at = _run_client(run)
    store = _store()
    previous = store.load()
    jobs = previous.jobs if previous and (previous.server, previous.email) == (server.rstrip("/"), email) else {}
    path = store.save(Credentials(server=server.rstrip("/"), token=token, email=email, expires_at=expires_at,
                                  jobs=jobs))
    console.print(f"Logged in to {server} as [cyan]{email}[/cyan] (token kept in {path}).", highlight=False)


@_command
def logout() -> None:
    """Forget the stored token."""
    console.print("Logged out." if _store().clear() else "Not logged in.")


@_command
def projects() -> None:
    """List the projects you can export."""
    from rich.table import Table

    credentials = _logged_in()

    async def run():
        async with _client(credentials) as client:
            return await client.projects()

    rows = _run_client(run)
    if not rows:
        console.print("No projects.")
        return
    table = Table("id", "name", "images", "role")
    for project in rows:
        table.add_row(project.id, project.name, str(project.image_count or 0), project.role)
    console.print(table)


def _formats(value: str | None, allowed: tuple[str, ...], option: str) -> list[str] | None:
    if value is None:
        return None
    chosen = [part.strip().lower() for part in value.split(",") if part.strip()]
    if chosen == ["none"]:
        return []
    unknown = [part for part in chosen if part not in allowed]
    if unknown:
        raise typer.BadParameter(f"unknown format {', '.join(unknown)}; choose from {', '.join(allowed)}",
                                 param_hint=option)
    return chosen


@_command
def export(
    project_id: Annotated[str, typer.Argument(help="The project to export (see `exportd projects`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the ZIP (a file, or a folder).")],
    annotations: Annotated[str | None, typer.Option(
        help="Annotation formats, comma-separated: coco,yolo,json,masks,geojson (or none). Default: coco,json.")] = None,
    metrics: Annotated[str | None, typer.Option(
        help="Metrics formats, comma-separated: excel,csv,json (or none). Default: excel.")] = None,
    images: Annotated[bool, typer.Option("--images/--no-images", help="Include the original images.")] = True,
    visualizations: Annotated[bool, typer.Option(
        "--visualizations/--no-visualizations", help="Include the polygon overlays.")] = True,
    documentation: Annotated[bool, typer.Option(
        "--documentation/--no-documentation", help="Include the README and the metrics guide.")] = True,
    scale: Annotated[float | None, typer.Option(
        help="Micrometres per pixel (0.001-1000): metrics in µm instead of px.", show_default=False)] = None,
) -> None:
    """Export a project, follow it with a progress bar, and write the ZIP to --out.

    Ctrl-C cancels the export on the server, waits for the answer, and exits with 130; nothing is written.
    """
    from pydantic import ValidationError

    from exportd.domain.options import ExportOptions

    values: dict = {"include_original_images": images, "include_visualizations": visualizations,
                    "include_documentation": documentation}
    if (chosen := _formats(annotations, ANNOTATION_FORMATS, "--annotations")) is not None:
        values["annotation_formats"] = chosen
    if (chosen := _formats(metrics, METRICS_FORMATS, "--metrics")) is not None:
        values["metrics_formats"] = chosen
    if scale is not None:
        values["pixel_to_micrometer_scale"] = scale
    try:
        options = ExportOptions(**values)
    except ValidationError as error:
        first = error.errors()[0]
        raise typer.BadParameter(first["msg"], param_hint="--scale" if "scale" in str(first["loc"]) else None) \
            from None
    folder = out if out.is_dir() else out.parent
    if not folder.is_dir():
        raise typer.BadParameter(f"the folder {folder} does not exist", param_hint="--out")
    credentials = _logged_in()
    code = _run_client(_export, credentials, project_id, options, out)
    raise typer.Exit(code)


async def _export(credentials, project_id: str, options, out: Path) -> int:
    """Start, follow, download; on SIGINT cancel on the server, wait for its answer, and return 130."""
    import signal
    import uuid

    loop = asyncio.get_running_loop()
    interrupted = asyncio.Event()
    presses = 0

    def on_sigint() -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            err_console.print("\nCancelling the export… (Ctrl-C again to stop waiting)")
        interrupted.set()
        if presses > 1 and waiting is not None:
            waiting.cancel()

    waiting: asyncio.Task | None = None
    loop.add_signal_handler(signal.SIGINT, on_sigint)
    try:
        async with _client(credentials) as client:
            # Quick; an interrupt during it is handled right after, once the job (to cancel) is known.
            job = await client.start_export(project_id, options, idempotency_key=uuid.uuid4().hex)
            credentials.remember_job(job.id, job.project_id)
            _store().save(credentials)
            if not interrupted.is_set():
                work = asyncio.ensure_future(_follow(client, job, out))
                stop = asyncio.ensure_future(interrupted.wait())
                await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                work.cancel()  # the watch stops; a download under way deletes its temporary file
                await asyncio.gather(work, return_exceptions=True)
                if not work.cancelled():  # it ended before the interrupt could stop it (saved, failed, …)
                    return work.result()
            waiting = asyncio.ensure_future(_cancel_after_interrupt(client, job))
            try:
                return await waiting
            except asyncio.CancelledError:
                err_console.print("Stopped waiting; the cancel may still be under way on the server.")
                return EXIT_INTERRUPTED
    finally:
        loop.remove_signal_handler(signal.SIGINT)


async def _cancel_after_interrupt(client, job) -> int:
    from exportd.client import ExportNotCancellable, FinishedBeforeCancel

    try:
        result = await client.cancel(job)
    except FinishedBeforeCancel:
        err_console.print(
            f"The export finished before it could be cancelled, so nothing was downloaded.\n"
            f"  download it: exportd download {job.id} --out FILE\n"
            f"  discard it:  exportd discard {job.id}", highlight=False)
        return EXIT_INTERRUPTED
    except ExportNotCancellable as error:
        err_console.print(f"Not cancelled: {error.message}", highlight=False)
        return EXIT_INTERRUPTED
    err_console.print(f"Export {job.id} cancelled at {result.cancelled_at}.", highlight=False)
    return EXIT_INTERRUPTED


async def _follow(client, job, out: Path) -> int:
    from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn

    from exportd.domain.events import Cancelled, Completed, Failed, Queued, Started
    from exportd.domain.events import Progress as ProgressEvent

    columns = (SpinnerColumn(), TextColumn("{task.description:<16}"), BarColumn(), TaskProgressColumn(),
               TextColumn("{task.fields[eta]}"))
    with Progress(*columns, console=err_console, transient=False) as bar:
        task = bar.add_task("queued", total=100, eta="")
        async for event in client.watch(job):
            if isinstance(event, Queued):
                bar.update(task, description=f"queued ({event.position} ahead)" if event.position else "queued")
            elif isinstance(event, Started):
                bar.update(task, description="started")
            elif isinstance(event, ProgressEvent):
                eta = f"ETA {_duration(event.eta_seconds)}" if event.eta_seconds is not None else ""
                bar.update(task, description=event.stage, completed=event.progress, eta=eta)
            elif isinstance(event, Completed):
                bar.update(task, description="completed", completed=100, eta=_size(event.export_size))
            elif isinstance(event, (Failed, Cancelled)):
                bar.update(task, description=event.status, eta="")
    state = client.tracker(job)
    terminal = state.terminal_event
    if isinstance(terminal, Failed):
        err_console.print(f"[bold red]Export failed:[/bold red] {terminal.error} ({terminal.code})", highlight=False)
        return 1
    if isinstance(terminal, Cancelled):
        err_console.print(f"[bold red]Export cancelled[/bold red] ({terminal.reason}); nothing was written.",
                          highlight=False)
        return 1
    saved = await client.auto_download(job, out)
    if saved is None:
        err_console.print("The export was not downloaded: the server does not report it as completed.")
        return 1
    console.print(f"Saved {saved} ({_size(saved.stat().st_size)}).", highlight=False)
    return 0


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def _size(size: int | None) -> str:
    size = size or 0
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


@_command
def status(
    job_id: Annotated[str, typer.Argument(help="The export job.")],
    project: ProjectOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the job as JSON.")] = False,
) -> None:
    """Show an export job as the server sees it."""
    job = _on_job(job_id, project, lambda client, project_id: client.status(job_id, project_id))
    if as_json:
        print(job.model_dump_json(by_alias=True, indent=2))
        return
    from rich.table import Table

    table = Table(show_header=False, box=None)
    rows = [("job", job.id), ("project", job.project_id), ("status", job.status.value),
            ("progress", f"{job.progress:.0f}%"), ("stage", job.stage), ("message", job.message),
            ("created", job.created_at), ("completed", job.completed_at), ("cancelled", job.cancelled_at),
            ("reason", job.reason), ("error", job.error), ("file", job.file_name),
            ("size", _size(job.export_size) if job.export_size else None)]
    for name, value in rows:
        if value not in (None, ""):
            table.add_row(f"[bold]{name}[/bold]", str(value))
    console.print(table)


@_command
def cancel(
    job_id: Annotated[str, typer.Argument(help="The export job.")],
    project: ProjectOption = None,
) -> None:
    """Cancel a pending or processing export."""
    result = _on_job(job_id, project, lambda client, project_id: client.cancel(job_id, project_id))
    console.print(f"Export {job_id} cancelled at {result.cancelled_at}.", highlight=False)


@_command
def download(
    job_id: Annotated[str, typer.Argument(help="The export job.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the ZIP (a file, or a folder).")],
    project: ProjectOption = None,
) -> None:
    """Download the ZIP of a completed export (nothing is written unless the whole file arrives)."""
    saved = _on_job(job_id, project, lambda client, project_id: client.download(job_id, out, project_id))
    console.print(f"Saved {saved} ({_size(saved.stat().st_size)}).", highlight=False)


@_command
def discard(
    job_id: Annotated[str, typer.Argument(help="The export job.")],
    project: ProjectOption = None,
) -> None:
    """Delete a finished export and its file on the server."""
    _on_job(job_id, project, lambda client, project_id: client.discard(job_id, project_id))
    console.print(f"Export {job_id} discarded.", highlight=False)
