"""The ``exportd`` command: run the service, apply migrations, and use a running service as a client.

Server side, here: ``serve``, ``migrate``. Client side, in ``exportd.client.commands``:
``login``, ``logout``, ``projects`` (``projects create``), ``import``, ``export``,
``exports``, ``status``, ``cancel``, ``download``, ``discard``.
"""

from __future__ import annotations

import asyncio
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
    """Run the API, the Socket.IO server and the in-process workers."""
    import uvicorn

    from exportd.api.app import create_app
    from exportd.demo import DEMO_EMAIL, DEMO_PASSWORD, seed_demo_with

    settings = _settings(data_dir, worker_concurrency=workers).resolved()
    if demo:
        _, project_id = asyncio.run(seed_demo_with(settings))
        console.print(f"[bold]Demo ready[/bold]: sign in at [link]http://{host}:{port}/[/link] "
                      f"as [cyan]{DEMO_EMAIL}[/cyan] / [cyan]{DEMO_PASSWORD}[/cyan] (project {project_id})")
    console.print(f"exportd on http://{host}:{port}  data: {settings.data_dir}  API docs: http://{host}:{port}/docs")
    if settings.test_holds:
        console.print("[bold red]EXPORTD_TEST_HOLDS is set[/bold red]: anyone can hold jobs through "
                      "/api/testing/holds. For tests only, never in production.")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


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
