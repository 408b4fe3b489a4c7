"""Regenerate the browser UI screenshots in docs/screenshots/ (embedded in docs/browser.md).

Run from the repository root, once the UI is built (``make install``):

    .venv/bin/python docs/screenshots/take.py

It starts a real ``exportd serve`` on a free port with a throwaway data folder and
test holds enabled, creates a user with a project of six synthetic images, and
drives Debian's Chromium (/usr/bin/chromium) through Playwright: sign in, the
export dialog (its image picker and its overlay sliders), an export held mid-way,
that export cancelled, a second export completed next to the cancelled one in the
history, the same page in Czech and in a 400 px window, and an import with a COCO file.
"""

from __future__ import annotations

import io
import json
import shutil
import sys
import tempfile
from pathlib import Path

from PIL import Image
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # for tests.browser.support

from exportd.synthetic import synthetic_project
from tests.browser.support import CHROMIUM, CHROMIUM_ARGS, PASSWORD, Server, wait_for

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
    page.wait_for_function("""() => [...document.querySelectorAll('[data-testid=option-image-list] img')]
        .every((img) => img.complete && img.naturalWidth > 0)""", timeout=TIMEOUT_MS)
    shoot(page, "02-export-dialog.png")
    by("tab-visualization").click()
    shoot(page, "02b-export-dialog-overlays.png")
    by("tab-general").click()

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

    by("language").select_option("cs")
    expect(by("export-open")).to_have_text("Exportovat…")
    shoot(page, "06-czech.png", full_page=True)
    by("language").select_option("en")
    page.set_viewport_size({"width": 400, "height": 820})
    shoot(page, "07-narrow.png", full_page=True)
    page.set_viewport_size({"width": 1200, "height": 820})

    # Your own data: a new project, three images and a COCO file.
    folder = Path(tempfile.mkdtemp(prefix="exportd-import-"))
    try:
        images = list(synthetic_project(count=3, seed=21))
        for name, png, _ in images:
            (folder / name).write_bytes(png)
        (folder / "instances.json").write_text(json.dumps(coco_of(images)))
        by("project-name").fill("My spheroids")
        by("project-create").click()
        expect(page.locator("#import-dialog")).to_be_visible(timeout=TIMEOUT_MS)
        by("import-files").set_input_files([str(folder / name) for name, _, _ in images])
        by("import-coco").set_input_files(str(folder / "instances.json"))
        by("import-start").click()
        for index in range(len(images)):
            expect(by(f"import-file-{index}")).to_have_attribute("data-status", "stored", timeout=TIMEOUT_MS)
        shoot(page, "08-import.png")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def coco_of(images) -> dict:
    """A COCO instances file with the images' cells as polygons."""
    coco = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "cell"}]}
    for index, (name, png, polygons) in enumerate(images, 1):
        width, height = Image.open(io.BytesIO(png)).size
        coco["images"].append({"id": index, "file_name": name, "width": width, "height": height})
        for polygon in polygons:
            flat = [value for point in polygon["points"] for value in point]
            coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": index, "category_id": 1,
                                        "iscrowd": 0, "segmentation": [flat], "area": 1.0, "bbox": [0, 0, 1, 1]})
    return coco


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="exportd-screenshots-"))
    server = None
    try:
        server = Server.start(tmp)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(viewport={"width": 1200, "height": 820}, accept_downloads=True,
                                              locale="en-US")
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
