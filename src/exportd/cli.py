"""The ``exportd`` command: run the service, apply migrations, and use a running service as a client.

Server side, here: ``serve``, ``worker``, ``migrate``. Client side, in ``exportd.client.commands``:
``login``, ``logout``, ``projects`` (``projects create``), ``import``, ``export``,
``exports``, ``status``, ``cancel``, ``download``, ``discard``.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from exportd.client.commands import CLIENT_COMMANDS
from exportd.config import Settings

app = typer.Typer(help="exportd: segmentation exports as background jobs.", no_args_is_help=True,
                  add_completion=False)
console = Console()


def _settings(data_dir: Path | None, **overrides) -> Settings:
    values = {key: value for key, value in overrides.items() if value is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    return Settings(**values)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    data_dir: Annotated[Path | None, typer.Option(help="Data folder (default: EXPORTD_DATA_DIR or ./exportd-data).")] = None,
    demo: Annotated[bool, typer.Option(help="Create the demo user and project first.")] = False,
    workers: Annotated[int | None, typer.Option(help="Exports run at once (default: CPU count).")] = None,
) -> None:
    """Run the API, the Socket.IO server and the in-process workers.

    With EXPORTD_BROKER_URL set, this node runs no exports: it hands them to `exportd worker` processes.
    """
    import uvicorn

    from exportd.api.app import create_app
    from exportd.demo import DEMO_EMAIL, DEMO_PASSWORD, seed_demo_with

    settings = _settings(data_dir, worker_concurrency=workers).resolved()
    try:  # before anything is announced or seeded: a port in use ends here
        listening = _listen(host, port)
    except OSError as error:
        Console(stderr=True).print(
            f"[bold red]exportd cannot listen on {host}:{port}[/bold red]: {error.strerror or error}. "
            "Another program (another exportd?) may be using it; choose another with --port.", highlight=False)
        raise typer.Exit(1) from None
    if demo:
        _, project_id = asyncio.run(seed_demo_with(settings))
        console.print(f"[bold]Demo ready[/bold]: sign in at [link]http://{host}:{port}/[/link] "
                      f"as [cyan]{DEMO_EMAIL}[/cyan] / [cyan]{DEMO_PASSWORD}[/cyan] (project {project_id})")
    console.print(f"exportd on http://{host}:{port}  data: {settings.data_dir}  API docs: http://{host}:{port}/docs")
    if settings.test_holds:
        console.print("[bold red]EXPORTD_TEST_HOLDS is set[/bold red]: anyone can hold jobs through "
                      "/api/testing/holds. For tests only, never in production.")
    config = uvicorn.Config(create_app(settings), host=host, port=port, log_level="info")
    uvicorn.Server(config).run(sockets=[listening])


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to `host`:`port` and listening, as uvicorn would open it; OSError when it cannot."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    listening = socket.socket(family, socket.SOCK_STREAM)
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: restarts need no wait
        listening.bind(address)
        listening.listen(2048)
    except OSError:
        listening.close()
        raise
    return listening


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(help="Exports run at once: prefork processes (default: CPU count).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data folder (default: EXPORTD_DATA_DIR or ./exportd-data).")] = None,
    loglevel: Annotated[str, typer.Option(help="Celery's log level.")] = "INFO",
) -> None:
    """Run a Celery worker that runs exports (scaled out: needs EXPORTD_BROKER_URL and PostgreSQL)."""
    settings = _settings(data_dir).resolved()
    if not settings.broker_url:
        console.print("[red]exportd worker needs EXPORTD_BROKER_URL[/red] (a Redis URL, e.g. redis://127.0.0.1:6379/0)")
        raise typer.Exit(2)
    if settings.is_sqlite:
        console.print("[red]exportd worker needs a shared database[/red]: set EXPORTD_DATABASE_URL "
                      "(postgresql+asyncpg://…)")
        raise typer.Exit(2)
    if settings.test_holds:
        console.print("[bold red]EXPORTD_TEST_HOLDS is set[/bold red]: jobs may be held through Redis. "
                      "For tests only, never in production.")
    from exportd.engine.worker import run_worker

    run_worker(settings, concurrency or settings.worker_concurrency, loglevel=loglevel)


@app.command()
def migrate(
    data_dir: Annotated[Path | None, typer.Option(help="Data folder (default: EXPORTD_DATA_DIR or ./exportd-data).")] = None,
) -> None:
    """Apply the database migrations and exit."""
    from exportd.store.migrate import upgrade

    settings = _settings(data_dir).resolved()
    asyncio.run(upgrade(settings.database_url))
    console.print(f"Database is up to date: {settings.database_url}")


# The client commands (login, projects, export, status, cancel, ...) live with the SDK they drive.
for _name, _command in CLIENT_COMMANDS:
    if isinstance(_command, typer.Typer):
        app.add_typer(_command, name=_name)
    else:
        app.command(_name)(_command)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
