"""Regenerate the browser UI screenshots in docs/screenshots/ (embedded in docs/browser.md).

Run from the repository root, once the UI is built (``make install``):

    .venv/bin/python docs/screenshots/take.py

It starts a real ``exportd serve`` on a free port with a throwaway data folder and
test holds enabled, creates a user with a project of six synthetic images, and
drives Debian's Chromium (/usr/bin/chromium) through Playwright: sign in, the
export dialog, an export held mid-way, that export cancelled, and a second export
completed next to the cancelled one in the history.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # for tests.browser.support

from tests.browser.support import CHROMIUM, CHROMIUM_ARGS, PASSWORD, Server, wait_for  # noqa: E402

OUT = Path(__file__).resolve().parent
TIMEOUT_MS = 30_000


def shoot(page, name: str, full_page: bool = False) -> None:
    page.screenshot(path=str(OUT / name), full_page=full_page)
    print(f"wrote docs/screenshots/{name}")


def take(server: Server, page) -> None:
    account = server.account(images=6)
    by = page.get_by_test_id

    page.goto(server.url)
    expect(by("login-email")).to_be_visible(timeout=TIMEOUT_MS)
    by("login-email").fill(account.email)
    by("login-password").fill(PASSWORD)
    shoot(page, "01-sign-in.png")

    by("login-submit").click()
    by(f"project-{account.project_id}").click()
    expect(by("export-open")).to_be_visible(timeout=TIMEOUT_MS)
    by("export-open").click()
    expect(by("export-start")).to_be_visible(timeout=TIMEOUT_MS)
    shoot(page, "02-export-dialog.png")

    # The first export stops after its third image, while the page shows its progress.
    server.hold("item", after_items=3)
    by("export-start").click()
    first = server.the_job(account)["id"]
    server.held(first, "item")
    expect(by("export-status")).to_contain_text("Processing", timeout=TIMEOUT_MS)
    expect(by("export-message")).to_contain_text("left", timeout=TIMEOUT_MS)  # stage, message and ETA
    shoot(page, "03-progress.png")

    by("export-cancel").click()
    expect(by("export-status")).to_contain_text("Cancelled", timeout=TIMEOUT_MS)
    server.release_all()  # let the held pipeline see the cancel; later jobs are not held
    assert server.settled(account, first)["status"] == "cancelled"
    expect(by(f"history-row-{first}")).to_have_attribute("data-status", "cancelled", timeout=TIMEOUT_MS)
    shoot(page, "04-cancelled.png")

    # Only one active export per user: the second starts now that the first is over.
    by("export-open").click()
    by("export-start").click()
    second = wait_for(lambda: next((job["id"] for job in server.jobs(account) if job["id"] != first), None),
                      message="the second export to start")
    assert server.settled(account, second)["status"] == "completed"
    expect(by("export-status")).to_contain_text("Completed", timeout=TIMEOUT_MS)
    page.wait_for_function("id => window.__exportd.state.jobs[id]?.download === 'done'", arg=second,
                           timeout=TIMEOUT_MS)
    expect(by(f"history-row-{second}")).to_have_attribute("data-status", "completed", timeout=TIMEOUT_MS)
    expect(by(f"history-row-{first}")).to_have_attribute("data-status", "cancelled", timeout=TIMEOUT_MS)
    shoot(page, "05-completed-and-history.png", full_page=True)


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="exportd-screenshots-"))
    server = None
    try:
        server = Server.start(tmp)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(viewport={"width": 1200, "height": 820}, accept_downloads=True)
                take(server, context.new_page())
                context.close()
            finally:
                browser.close()
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
