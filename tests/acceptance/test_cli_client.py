"""The `exportd` client commands as a real process against the served app: login, export, Ctrl-C, errors.

The server runs in the test's event loop, so every command is awaited through
asyncio's subprocess API (a blocking `subprocess.run` would stall the server).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tests.acceptance.support import App, log, running, status, until_status
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
    """The command's outcome; one still running after `timeout` is killed, and the test fails with what it said."""
    communicating = asyncio.ensure_future(process.communicate())
    done, _ = await asyncio.wait({communicating}, timeout=timeout)
    if not done:
        process.kill()
        out, err = await communicating
        raise AssertionError(f"the command still ran after {timeout} s; it said:\n{out.decode()}\n{err.decode()}")
    out, err = communicating.result()
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


async def _interrupted_export(tmp_path: Path, *, wait_until_processing: bool, signal_number: int = signal.SIGINT,
                              exit_code: int = 130) -> None:
    """Start `exportd export` on a job held after its first item, press Ctrl-C (or send `signal_number`),
    and check the outcome."""
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

            process.send_signal(signal_number)
            result = await finished(process)

            assert result.code == exit_code, (result, await log(http, project_id, job["id"]))
            assert "Traceback" not in result.err and "Unclosed" not in result.err, result.err
            assert (await status(http, project_id, job["id"]))["status"] == "cancelled"
        assert list(out.iterdir()) == []  # no file at --out, and no temporary file beside it


async def test_ctrl_c_during_an_export_cancels_it_on_the_server_exits_130_and_writes_nothing(tmp_path):
    await _interrupted_export(tmp_path, wait_until_processing=True)


async def test_ctrl_c_as_soon_as_the_job_exists_cancels_it_too(tmp_path):
    """The CLI may still be connecting its socket: the interrupt cuts that short and still cancels cleanly."""
    await _interrupted_export(tmp_path, wait_until_processing=False)


async def test_sigterm_cancels_the_export_like_ctrl_c_exits_143_and_writes_nothing(tmp_path):
    await _interrupted_export(tmp_path, wait_until_processing=True, signal_number=signal.SIGTERM, exit_code=143)


async def test_export_prints_the_job_id_then_the_file_and_out_naming_a_folder_uses_the_servers_file_name(tmp_path):
    async with running(tmp_path) as app:
        cli = Cli(tmp_path)
        _, project_id = await account(app, cli)
        existing = tmp_path / "existing"
        existing.mkdir()
        into_new = await cli.run("export", project_id, "--out", f"{tmp_path / 'new'}/", "--no-visualizations",
                                 "--annotations", "masks,geojson")
        into_existing = await cli.run("export", project_id, "--out", str(existing), "--no-visualizations")
        listed = await cli.run("exports", project_id)

    assert into_new.code == 0 and into_existing.code == 0, (into_new, into_existing)
    saved_new, saved_existing = list((tmp_path / "new").iterdir()), list(existing.iterdir())
    assert len(saved_new) == 1 and len(saved_existing) == 1
    for result, saved in ((into_new, saved_new[0]), (into_existing, saved_existing[0])):
        out = " ".join(result.out.split())
        job_id = re.search(r"Export (\S+) started", out).group(1)
        assert out.index(f"Export {job_id} started") < out.index(f"Saved {saved}")
        assert saved.name.endswith(".zip") and saved.name != "new"
        assert job_id in listed.out
    with zipfile.ZipFile(saved_new[0]) as archive:
        names = archive.namelist()
    assert any(name.startswith("masks/") for name in names) and any(name.endswith(".geojson") for name in names)
    rows = [line for line in listed.out.splitlines() if "completed" in line]
    assert len(rows) == 2 and all(re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row) for row in rows)
    assert all(re.search(r"\d+(\.\d)? KB", row) for row in rows)


async def test_export_wait_waits_out_the_active_export_naming_it_then_runs(tmp_path):
    async with running(tmp_path, items=1, retry_after_seconds=1) as app:
        cli = Cli(tmp_path)
        token, project_id = await account(app, cli)
        async with app.client(token) as http:
            active = (await http.post(f"/api/projects/{project_id}/export", json={})).json()
            await app.items.reached(active["id"])
            refused = await cli.run("export", project_id, "--out", str(tmp_path), "--no-visualizations")
            process = await cli.spawn("export", project_id, "--out", str(tmp_path), "--no-visualizations", "--wait")
            before = b""
            while b"Waiting" not in before:  # the CLI says it waits, and for which export
                line = await asyncio.wait_for(process.stderr.readline(), 30)
                assert line, "the CLI ended without waiting"
                before += line
            app.items.open_all()  # the active export finishes; the waiting one starts and runs through
            result = await finished(process)
            result.err = before.decode() + result.err

    assert refused.code == 1 and f"Export {active['id']}" in " ".join(refused.err.split())
    assert "--wait" in refused.err
    assert result.code == 0, result
    assert f"Export {active['id']} of Spheroids is processing" in " ".join(result.err.split())
    assert "Saved" in result.out


async def test_every_command_says_clearly_when_the_server_cannot_be_reached(tmp_path):
    async with running(tmp_path) as app:
        cli = Cli(tmp_path)
        _, project_id = await account(app, cli)
    image = tmp_path / "a.png"
    image.write_bytes(b"\x89PNG")
    commands = [("projects",), ("projects", "create", "X"), ("import", project_id, str(image)),
                ("export", project_id, "--out", str(tmp_path)), ("exports", project_id), ("status", "job-1"),
                ("cancel", "job-1"), ("download", "job-1", "--out", str(tmp_path)), ("discard", "job-1"),
                ("login", "--server", app.url, "--email", "ada@example.com", "--password", PASSWORD)]
    results = await asyncio.gather(*(cli.run(*command) for command in commands))  # the server is gone
    for command, result in zip(commands, results, strict=True):
        assert result.code == 1, (command, result)
        assert "Cannot reach" in result.err and "Is exportd running there?" in result.err, (command, result)
        assert "Traceback" not in result.err, (command, result)


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
