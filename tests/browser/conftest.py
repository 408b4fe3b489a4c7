"""The browser tier: Debian's chromium, driven by Playwright, against a real ``exportd serve`` process.

Each test gets its own server (a subprocess with a private data folder and
``EXPORTD_TEST_HOLDS`` set, so the test can hold a job over HTTP), its own user
and project, and a fresh browser context that records every download.
Without /usr/bin/chromium or the built UI the tier is skipped, except under CI
(``CI=true``), where that is a failure.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from exportd.api.web import BUNDLE
from tests.browser.support import CHROMIUM, CHROMIUM_ARGS, Downloads, Server, wait_for


def pytest_collection_modifyitems(items):
    """Mark the tier, and run it last: it is the slowest and needs the most from the machine."""
    browser = [item for item in items if "tests/browser/" in str(item.fspath)]
    for item in browser:
        item.add_marker(pytest.mark.browser)
    items[:] = [item for item in items if item not in browser] + browser


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} (required under CI)")
    pytest.skip(what)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is not installed (apt-get install chromium)")
    if not (BUNDLE / "index.html").is_file():
        _missing("the browser UI is not built (make web)")
    return CHROMIUM


@pytest.fixture
def server(tmp_path, chromium_path) -> Iterator[Server]:
    port = _free_port()
    log = tmp_path / "server.log"
    env = {**os.environ, "EXPORTD_TEST_HOLDS": "true", "EXPORTD_PASSWORD_HASH_FAST": "true",
           "EXPORTD_SECRET_KEY": "browser-tests-secret-key-0123456789abcdef",
           "EXPORTD_WORKER_CONCURRENCY": "2", "EXPORTD_EXPORT_PROCESSES": "0",
           "EXPORTD_MAX_ACTIVE_EXPORTS_PER_USER": "1", "EXPORTD_PROGRESS_INTERVAL_SECONDS": "0.05"}
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-c", "from exportd.cli import main; main()", "serve",
                                    "--port", str(port),
                                    "--data-dir", str(tmp_path / "data")], env=env, stdout=out, stderr=subprocess.STDOUT)
    instance = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_for(lambda: _ready(instance) or process.poll() is not None, 30, message="exportd serve to start")
        if process.poll() is not None:
            raise AssertionError(f"exportd serve exited:\n{log.read_text()}")
        yield instance
    finally:
        instance.release_all() if process.poll() is None else None
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        instance.http.close()


def _ready(server: Server) -> bool:
    try:
        return server.http.get("/api/readyz").status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
def browser(chromium_path):
    """Module-scoped: Playwright's sync API keeps an event loop marked running while it is open,
    which the async tiers' fixtures must not find."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def downloads(tmp_path) -> Downloads:
    folder = tmp_path / "downloads"
    folder.mkdir()
    return Downloads(folder)


@pytest.fixture
def context(browser, downloads):
    context = browser.new_context(accept_downloads=True)
    context.on("page", lambda page: page.on("download", downloads.record))
    yield context
    context.close()
