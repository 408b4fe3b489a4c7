"""The `exportd` client commands as a real process against the served app: login, export, Ctrl-C, errors.

The server runs in the test's event loop, so every command is awaited through
asyncio's subprocess API (a blocking `subprocess.run` would stall the server).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tests.acceptance.support import App, running, status, until_status
from tests.conftest import eventually

EXPORTD = Path(sys.executable).with_name("exportd")
PASSWORD = "correct horse"


@dataclass
class Result:
    code: int
    out: str
    err: str


class Cli:
    """Runs `exportd` with its own config folder, away from the real home."""

    def __init__(self, tmp_path: Path) -> None:
        self.config = tmp_path / "config"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORTD_")}
        self.env.update({"EXPORTD_CONFIG_DIR": str(self.config), "COLUMNS": "120", "NO_COLOR": "1"})

    async def spawn(self, *args: str, **env: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            str(EXPORTD), *args, env={**self.env, **env}, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)

    async def run(self, *args: str, timeout: float = 60, **env: str) -> Result:
        process = await self.spawn(*args, **env)
        return await finished(process, timeout)

    async def login(self, app: App, email: str = "ada@example.com") -> Result:
        result = await self.run("login", "--server", app.url, "--email", email, EXPORTD_PASSWORD=PASSWORD)
        assert result.code == 0, result
        return result


async def finished(process: asyncio.subprocess.Process, timeout: float = 60) -> Result:
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    return Result(process.returncode, out.decode(), err.decode())


async def account(app: App, cli: Cli) -> tuple[str, str]:
    """A user with a project of two images, logged in through the CLI; returns (token, project id)."""
    _, token = await app.user("ada@example.com")
    project_id, _ = await app.project(token)
    await cli.login(app)
    return token, project_id


async def test_login_keeps_the_token_in_a_private_file_in_the_config_folder(tmp_path):
    async with running(tmp_path) as app:
        cli = Cli(tmp_path)
        await account(app, cli)
        stored = cli.config / "credentials.json"
        assert stored.stat().st_mode & 0o777 == 0o600
        assert json.loads(stored.read_text())["server"] == app.url

        listed = await cli.run("projects")
        assert listed.code == 0 and "Spheroids" in listed.out

        wrong = await cli.run("login", "--server", app.url, "--email", "ada@example.com", "--password", "nope nope")
        assert wrong.code == 1 and "Traceback" not in wrong.err and "password" in wrong.err.lower()


async def test_export_writes_a_valid_zip_to_out(tmp_path):
    async with running(tmp_path) as app:
        cli = Cli(tmp_path)
        _, project_id = await account(app, cli)
        out = tmp_path / "out"
        out.mkdir()
        result = await cli.run("export", project_id, "--out", str(out / "spheroids.zip"), "--annotations", "coco,yolo",
                               "--metrics", "csv", "--no-visualizations", "--scale", "0.5")
        assert result.code == 0, result
        with zipfile.ZipFile(out / "spheroids.zip") as archive:
            assert archive.testzip() is None
            names = archive.namelist()
        assert "annotations/yolo/classes.txt" in names and "metrics/metrics.csv" in names
        assert not any(name.startswith("visualizations/") for name in names)
        assert sorted(p.name for p in out.iterdir()) == ["spheroids.zip"]

        job_id = next(iter(json.loads((cli.config / "credentials.json").read_text())["jobs"]))
        shown = await cli.run("status", job_id)  # the project is remembered from `export`
        assert shown.code == 0 and "completed" in shown.out


async def _interrupted_export(tmp_path: Path, *, wait_until_processing: bool) -> None:
    """Start `exportd export` on a job held after its first item, press Ctrl-C, and check the outcome."""
    async with running(tmp_path, items=1) as app:
        cli = Cli(tmp_path)
        token, project_id = await account(app, cli)
        out = tmp_path / "out"
        out.mkdir()
        process = await cli.spawn("export", project_id, "--out", str(out / "export.zip"))

        async with app.client(token) as http:
            async def started_job():
                response = await http.get(f"/api/projects/{project_id}/export/history")
                jobs = response.json()["jobs"]
                return jobs[0] if jobs else None

            job = await eventually(started_job, 30, interval=0.005, message="the CLI to start an export")
            if wait_until_processing:
                await app.items.reached(job["id"], timeout=30)  # processing, held after its first item
                await until_status(http, project_id, job["id"], "processing")

            process.send_signal(signal.SIGINT)
            result = await finished(process)

            assert result.code == 130, result
            assert "Traceback" not in result.err and "Unclosed" not in result.err, result.err
            assert (await status(http, project_id, job["id"]))["status"] == "cancelled"
        assert list(out.iterdir()) == []  # no file at --out, and no temporary file beside it


async def test_ctrl_c_during_an_export_cancels_it_on_the_server_exits_130_and_writes_nothing(tmp_path):
    await _interrupted_export(tmp_path, wait_until_processing=True)


async def test_ctrl_c_as_soon_as_the_job_exists_cancels_it_too(tmp_path):
    """The CLI may still be connecting its socket: the interrupt cuts that short and still cancels cleanly."""
    await _interrupted_export(tmp_path, wait_until_processing=False)


async def test_cancel_and_status_of_a_job_started_elsewhere_find_its_project(tmp_path):
    async with running(tmp_path, items=1) as app:
        cli = Cli(tmp_path)
        token, project_id = await account(app, cli)
        async with app.client(token) as http:
            job = (await http.post(f"/api/projects/{project_id}/export", json={})).json()
            await app.items.reached(job["id"])

            cancelled = await cli.run("cancel", job["id"])  # not started by this CLI: looked up by id
            assert cancelled.code == 0, cancelled
            assert (await status(http, project_id, job["id"]))["status"] == "cancelled"

            shown = await cli.run("status", job["id"], "--project", project_id, "--json")
            assert shown.code == 0 and json.loads(shown.out)["status"] == "cancelled"

            gone = await cli.run("download", job["id"], "--out", str(tmp_path / "x.zip"))
            assert gone.code == 1 and "no longer available" in gone.err and not (tmp_path / "x.zip").exists()


async def test_bad_input_gives_a_clear_message_and_a_non_zero_exit(tmp_path):
    async with running(tmp_path) as app:
        cli = Cli(tmp_path)

        not_logged_in = await cli.run("projects")
        assert not_logged_in.code == 1 and "Not logged in" in not_logged_in.err

        _, project_id = await account(app, cli)
        cases = [
            (("export", project_id, "--out", str(tmp_path / "a.zip"), "--annotations", "coco,pdf"), "pdf"),
            (("export", project_id, "--out", str(tmp_path / "a.zip"), "--scale", "0"), "--scale"),
            (("export", project_id, "--out", str(tmp_path / "missing" / "a.zip")), "does not exist"),
            (("export", "no-such-project", "--out", str(tmp_path / "a.zip")), "not found"),
            (("status", "no-such-job", "--project", project_id), "not found"),
            (("cancel", "no-such-job"), "not found"),
        ]
        for args, expected in cases:
            result = await cli.run(*args)
            message = " ".join(result.err.replace("│", " ").split()).lower()  # unwrap Rich's error box
            assert result.code != 0, (args, result)
            assert expected.lower() in message, (args, result)
            assert "Traceback" not in result.err, (args, result)
        assert not (tmp_path / "a.zip").exists()
