"""The browser tier: Debian's chromium, driven by Playwright, against a real ``exportd serve`` process.

Each test gets its own server (a subprocess with a private data folder and
``EXPORTD_TEST_HOLDS`` set, so the test can hold a job over HTTP), its own user
and project, and a fresh browser context that records every download.
Without /usr/bin/chromium or the built UI the tier is skipped, except under CI
(``CI=true``), where that is a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from exportd.api.web import BUNDLE
from tests.browser.support import CHROMIUM, CHROMIUM_ARGS, Downloads, Server


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


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is not installed (apt-get install chromium)")
    if not (BUNDLE / "index.html").is_file():
        _missing("the browser UI is not built (make web)")
    return CHROMIUM


@pytest.fixture
def server(tmp_path, chromium_path) -> Iterator[Server]:
    instance = Server.start(tmp_path, EXPORTD_WORKER_CONCURRENCY="2", EXPORTD_MAX_ACTIVE_EXPORTS_PER_USER="1")
    try:
        yield instance
    finally:
        instance.stop()


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
    context = browser.new_context(accept_downloads=True, locale="en-US")
    context.on("page", lambda page: page.on("download", downloads.record))
    yield context
    context.close()
