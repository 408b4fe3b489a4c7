"""The client commands of ``exportd``: a running exportd, through the SDK.

``login``, ``logout``, ``projects`` (and ``projects create``), ``import``,
``export``, ``exports``, ``status``, ``cancel``, ``download``, ``discard``;
``exportd.cli`` registers them beside ``serve`` and ``migrate``. They read the
server and token that ``login`` stored (see ``exportd.client.credentials``).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

CLIENT_COMMANDS: list = []  #: (name, function or typer.Typer with subcommands), in the order of `exportd --help`
console = Console()


def _command(function=None, *, name: str | None = None):
    def register(function):
        CLIENT_COMMANDS.append((name or function.__name__, function))
        return function

    return register(function) if function is not None else register


err_console = Console(stderr=True)

EXIT_INTERRUPTED = 130  #: 128 + SIGINT, what shells report for Ctrl-C
EXIT_TERMINATED = 143  #: 128 + SIGTERM
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

    from exportd.client import (
        ConnectionFailed,
        ExportdError,
        ExportGone,
        FinishedBeforeCancel,
        TooManyActiveExports,
        Unauthorized,
    )

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
        raise _fail(f"{error.message}\nIs exportd running there? (`exportd serve`, or log in to another server "
                    "with `exportd login --server URL`.)") from None
    except TooManyActiveExports as error:
        raise _fail(f"{error.message}{_active_exports(error)} Wait for it, cancel it, or run the export "
                    "with --wait.") from None
    except ExportdError as error:
        field = error.details.get("field")
        raise _fail(f"{error.message}" + (f" (field: {field})" if field and field not in error.message else "")) \
            from None
    except (OSError, ValueError) as error:
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


projects_app = typer.Typer(help="List your projects, or create one.", invoke_without_command=True,
                           no_args_is_help=False)
CLIENT_COMMANDS.append(("projects", projects_app))


@projects_app.callback()
def projects(
    context: typer.Context,
    plain: Annotated[bool, typer.Option("--plain", help="One project a line: id, a tab, its name (for scripts).")]
    = False,
) -> None:
    """List the projects you can export (`exportd projects create NAME` makes one)."""
    if context.invoked_subcommand is not None:
        return
    from rich.table import Column, Table

    credentials = _logged_in()

    async def run():
        async with _client(credentials) as client:
            return await client.projects()

    rows = _run_client(run)
    if plain:
        for project in rows:
            print(f"{project.id}\t{project.name}")
        return
    if not rows:
        console.print("No projects. Create one with `exportd projects create NAME`.")
        return
    table = Table(Column("id", no_wrap=True, min_width=36), "name", "images", "role")
    for project in rows:
        table.add_row(project.id, project.name, str(project.image_count or 0), project.role)
    console.print(table)


@projects_app.command("create")
def create_project(name: Annotated[str, typer.Argument(help="The project's name.")]) -> None:
    """Create a project and print its id (for `exportd import` and `exportd export`): `P=$(exportd projects create X)`."""
    credentials = _logged_in()

    async def run():
        async with _client(credentials) as client:
            return await client.create_project(name)

    project = _run_client(run)
    err_console.print(f"Created project [cyan]{project.name}[/cyan].", highlight=False)
    print(project.id)  # alone on stdout, for scripts


@_command(name="import")
def import_images(
    project_id: Annotated[str, typer.Argument(help="The project to import into (see `exportd projects`).")],
    images: Annotated[list[Path], typer.Argument(
        help="Image files, or folders of them (PNG, JPEG, TIFF, BMP; folders are searched recursively).",
        show_default=False)],
    coco: Annotated[Path | None, typer.Option(
        help="A COCO instances file with the images' polygons (matched by file name).", show_default=False)] = None,
    masks: Annotated[Path | None, typer.Option(
        help="A folder of instance label images (8/16/32-bit PNG or TIFF, 0 the background), matched to the "
             "images by stem (also <stem>_masks, <stem>_cp_masks, …).", show_default=False)] = None,
    class_name: Annotated[str, typer.Option(help="The class of the cells traced from --masks.")] = "cell",
) -> None:
    """Import your own images, with their cells from a COCO file or label images, into a project.

    Images the project already holds (same name and content) are skipped, so running the same
    import again stores nothing twice. Files that cannot be imported are named with the reason;
    the exit code is then 1.
    """
    if coco is not None and masks is not None:
        raise typer.BadParameter("give --coco or --masks, not both", param_hint="--coco / --masks")
    credentials = _logged_in()
    from exportd.client.importer import plan_import

    try:
        plan = plan_import(images, coco=coco, masks=masks)
    except ValueError as error:
        raise _fail(str(error)) from None
    summary = _run_client(_import, credentials, project_id, plan, class_name)
    _print_summary(summary)
    raise typer.Exit(1 if summary.rejected else 0)


async def _import(credentials, project_id: str, plan, class_name: str):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from exportd.client.importer import run_import

    columns = (TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[cells]} cells"),
               TimeRemainingColumn())
    with Progress(*columns, console=err_console) as bar:
        task = bar.add_task("import", total=len(plan.items), cells=0)

        def advance(images: int, summary) -> None:
            bar.update(task, advance=images, cells=summary.cells)

        async with _client(credentials) as client:
            return await run_import(client, project_id, plan, class_name=class_name, on_batch=advance)


def _print_summary(summary) -> None:
    console.print(f"Imported {len(summary.imported)} images with {summary.cells} cells; "
                  f"{len(summary.skipped)} already in the project (skipped); "
                  f"{len(summary.rejected)} rejected; {len(summary.warnings)} warnings.", highlight=False)
    for entry in summary.rejected:
        err_console.print(f"[bold red]rejected[/bold red] {entry['file']}: {entry['reason']}", highlight=False)
    for message in summary.warnings:
        err_console.print(f"[yellow]warning[/yellow] {message}", highlight=False)


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


OutOption = Annotated[str, typer.Option(
    "--out", "-o", help="Where to write the ZIP: a file, or a folder (one that exists, or a path ending in /, "
                        "created if needed) to write it in under the server's file name.")]


def _out_path(raw: str) -> Path:
    """The --out target: a folder when it is one or ends in a slash (created then), else a file in a folder that exists."""
    path = Path(raw).expanduser()
    if raw.endswith(("/", os.sep)):
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise typer.BadParameter(f"cannot create the folder {path}: {error.strerror}", param_hint="--out") \
                from None
        return path
    folder = path if path.is_dir() else path.parent
    if not folder.is_dir():
        raise typer.BadParameter(f"the folder {folder} does not exist", param_hint="--out")
    return path


@_command
def export(
    project_id: Annotated[str, typer.Argument(help="The project to export (see `exportd projects`).")],
    out: OutOption,
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
    wait: Annotated[bool, typer.Option(
        "--wait", help="If another export of yours is running, wait for it to end instead of failing.")] = False,
) -> None:
    """Export a project, follow it with a progress bar, and write the ZIP to --out.

    Prints the job id when it starts and the file when it ends. Ctrl-C (or SIGTERM) cancels the
    export on the server, waits for the answer, and exits with 130 (143); nothing is written.
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
    target = _out_path(out)
    credentials = _logged_in()
    code = _run_client(_export, credentials, project_id, options, target, wait)
    raise typer.Exit(code)


async def _export(credentials, project_id: str, options, out: Path, wait: bool = False) -> int:
    """Start, follow, download; on SIGINT or SIGTERM cancel on the server, wait for its answer, return 130 or 143."""
    import signal
    import uuid

    loop = asyncio.get_running_loop()
    interrupted = asyncio.Event()
    presses = 0
    exit_code = EXIT_INTERRUPTED

    def on_signal(code: int) -> None:
        nonlocal presses, exit_code
        presses += 1
        if presses == 1:
            exit_code = code
            err_console.print("\nCancelling the export… (Ctrl-C again to stop waiting)")
        interrupted.set()
        if presses > 1 and waiting is not None:
            waiting.cancel()

    waiting: asyncio.Task | None = None
    signals = ((signal.SIGINT, EXIT_INTERRUPTED), (signal.SIGTERM, EXIT_TERMINATED))
    for number, code in signals:
        loop.add_signal_handler(number, on_signal, code)
    try:
        async with _client(credentials) as client:
            # Quick; an interrupt during it is handled right after, once the job (to cancel) is known.
            job = await _start(client, project_id, options, uuid.uuid4().hex, wait, interrupted)
            if job is None:  # interrupted while waiting for another export: nothing of ours to cancel
                err_console.print("Stopped waiting; no export was started.")
                return exit_code
            credentials.remember_job(job.id, job.project_id)
            _store().save(credentials)
            console.print(f"Export {job.id} started (project {job.project_id}).", highlight=False, soft_wrap=True)
            if not interrupted.is_set():
                work = asyncio.ensure_future(_follow(client, job, out))
                stop = asyncio.ensure_future(interrupted.wait())
                await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                await _stopped(work)  # the watch stops; a download under way deletes its temporary file
                if not work.cancelled():  # it ended before the interrupt could stop it (saved, failed, …)
                    return work.result()
            waiting = asyncio.ensure_future(_cancel_after_interrupt(client, job))
            try:
                await waiting
            except asyncio.CancelledError:
                err_console.print("Stopped waiting; the cancel may still be under way on the server.")
            return exit_code
    finally:
        for number, _ in signals:
            loop.remove_signal_handler(number)


async def _stopped(task: asyncio.Task) -> None:
    """Cancel `task` and wait for it to end, cancelling it again for as long as it goes on.

    One cancellation can be lost: on Python 3.11, ``asyncio.wait_for`` (python-socketio's connect uses it)
    returns its result instead of raising when the task is cancelled as what it waits for completes. The
    watch then went on, and the interrupted command waited for it for ever, its export never cancelled."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)


async def _start(client, project_id: str, options, key: str, wait: bool, interrupted: asyncio.Event):
    """Start the export; with `wait`, a 429 is waited out (showing which export is active) and retried."""
    from exportd.client import TooManyActiveExports

    shown: set[str] = set()
    while True:
        try:
            return await client.start_export(project_id, options, idempotency_key=key)
        except TooManyActiveExports as error:
            if not wait:
                raise
            active = _active_exports(error)
            if active not in shown:
                shown.add(active)
                err_console.print(f"Waiting:{active or ' another export of yours is running.'} "
                                  "(Ctrl-C stops waiting.)", highlight=False)
            try:
                await asyncio.wait_for(interrupted.wait(), timeout=max(1, error.retry_after))
                return None
            except TimeoutError:
                continue


def _active_exports(error) -> str:
    """' Export <id> of <project> is processing (42%).' for each export the 429 names as active."""
    active = error.details.get("active")
    if not isinstance(active, list):
        return ""
    return "".join(f" Export {job.get('id')} of {job.get('projectName') or job.get('projectId')} is "
                   f"{job.get('status')} ({float(job.get('progress') or 0):.0f}%)."
                   for job in active if isinstance(job, dict))


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
    console.print(f"Saved {saved} ({_size(saved.stat().st_size)}).", highlight=False, soft_wrap=True)
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
def exports(
    project_id: Annotated[str, typer.Argument(help="The project (see `exportd projects`).")],
    limit: Annotated[int, typer.Option(help="How many, newest first.", min=1, max=100)] = 20,
) -> None:
    """List your exports of a project, newest first: id, status, when, size, file."""
    from rich.table import Column, Table

    credentials = _logged_in()

    async def run():
        async with _client(credentials) as client:
            return await client.history(project_id, limit=limit)

    jobs = _run_client(run)
    if not jobs:
        console.print("No exports of this project yet.")
        return
    table = Table(Column("id", no_wrap=True, min_width=36), Column("status", no_wrap=True),
                  Column("when", no_wrap=True), Column("size", no_wrap=True), Column("file", overflow="fold"))
    for job in jobs:
        when = job.completed_at or job.cancelled_at or job.failed_at or job.started_at or job.created_at or ""
        size = _size(job.export_size) if job.export_size and job.available else ""
        file = job.file_name if job.available else ("expired" if job.status == "completed" else "")
        table.add_row(job.id, job.status.value, when.replace("T", " ").removesuffix("Z")[:19], size, file or "")
    console.print(table)


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
    out: OutOption,
    project: ProjectOption = None,
) -> None:
    """Download the ZIP of a completed export (nothing is written unless the whole file arrives)."""
    out = _out_path(out)
    saved = _on_job(job_id, project, lambda client, project_id: client.download(job_id, out, project_id))
    console.print(f"Saved {saved} ({_size(saved.stat().st_size)}).", highlight=False, soft_wrap=True)


@_command
def discard(
    job_id: Annotated[str, typer.Argument(help="The export job.")],
    project: ProjectOption = None,
) -> None:
    """Delete a finished export and its file on the server."""
    _on_job(job_id, project, lambda client, project_id: client.discard(job_id, project_id))
    console.print(f"Export {job_id} discarded.", highlight=False)
