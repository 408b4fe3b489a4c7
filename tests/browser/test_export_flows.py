"""The browser UI against a real `exportd serve`, in headless Chromium.

Every "no download" below is checked against Playwright's own download events,
the ground truth, after the UI has settled the job (its terminal follow-up is
decided) and after the UI's auto-download delay has passed once more.
"""

from __future__ import annotations

import re
import zipfile

from playwright.sync_api import Page, expect

from tests.browser.support import Account, Downloads, Server, is_valid_zip

TIMEOUT_MS = 30_000


def sign_in(page: Page, server: Server, account: Account) -> None:
    """Open the UI and the account's project, signing in unless the context's cookie already does."""
    page.goto(server.url)
    form, project = page.get_by_test_id("login-email"), page.get_by_test_id(f"project-{account.project_id}")
    expect(form.or_(project).first).to_be_visible(timeout=TIMEOUT_MS)
    if form.is_visible():
        form.fill(account.email)
        page.get_by_test_id("login-password").fill("correct horse")
        page.get_by_test_id("login-submit").click()
    project.click()
    expect(page.get_by_test_id("export-open")).to_be_visible(timeout=TIMEOUT_MS)


def open_second_tab(page: Page, server: Server, account: Account) -> None:
    """Another tab of the same browser: the shared cookie signs it in, the address opens the project."""
    page.goto(f"{server.url}/#/projects/{account.project_id}")
    expect(page.get_by_test_id("export-open")).to_be_visible(timeout=TIMEOUT_MS)


def start_export(page: Page) -> None:
    page.get_by_test_id("export-open").click()
    page.get_by_test_id("export-start").click()


def held_export(server: Server, page: Page, point: str, after_items: int = 1) -> tuple[Account, str]:
    """A new account's export, started from `page` and held by the server at `point`: (account, job id)."""
    account = server.account()
    server.hold(point, after_items)
    sign_in(page, server, account)
    start_export(page)
    job_id = server.the_job(account)["id"]
    server.held(job_id, point)
    return account, job_id


class SocketCancels:
    """The page's Socket.IO connection, passed through to the server, except `export:cancel` messages,
    which are held (`hold`), dropped (`drop`, so the page's wait for the acknowledgement runs out) or
    passed on and counted (`pass`). Route it before the page connects."""

    def __init__(self, page: Page, mode: str = "hold") -> None:
        self.mode = mode
        self.held: list[tuple[object, str]] = []
        self.seen = 0
        page.route_web_socket(re.compile(r"/socket\.io/"), self._route)

    def _route(self, ws) -> None:
        server = ws.connect_to_server()

        def from_page(message) -> None:
            if isinstance(message, str) and '"export:cancel"' in message:
                self.seen += 1
                if self.mode == "hold":
                    self.held.append((server, message))
                    return
                if self.mode == "drop":
                    return
            server.send(message)

        ws.on_message(from_page)

    def release(self) -> None:
        for server, message in self.held:
            server.send(message)
        self.held.clear()


def console_errors(page: Page) -> list[str]:
    """Collect what the page logs as errors, and any uncaught exception."""
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def ui_job(page: Page, job_id: str) -> dict | None:
    return page.evaluate("id => window.__exportd.state.jobs[id] || null", job_id)


def settled_in_ui(page: Page, job_id: str, status: str) -> dict:
    """Wait until the page shows `status` as final for the job and has decided what follows it."""
    expect(page.get_by_test_id("export-status")).to_have_attribute("data-status", status, timeout=TIMEOUT_MS)
    page.wait_for_function("""([id, status]) => {
        const job = window.__exportd.state.jobs[id];
        return job && job.terminal && job.status === status && job.settled
            && job.download !== 'scheduled' && job.download !== 'running';
    }""", arg=[job_id, status], timeout=TIMEOUT_MS)
    return ui_job(page, job_id)


def past_auto_download_delay(page: Page) -> None:
    """Give a wrongly scheduled auto-download the time to happen: the UI's delay, twice over."""
    delay = page.evaluate("window.__exportd.config.autoDownloadDelayMs")
    page.wait_for_timeout(2 * delay + 500)


def wait_for_downloads(page: Page, downloads: Downloads, count: int) -> None:
    for _ in range(TIMEOUT_MS // 100):
        if len(downloads) >= count:
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"expected {count} download(s), saw {len(downloads)}")


def test_a_completed_export_is_downloaded_once_and_is_a_valid_zip(server, context, downloads):
    account = server.account()
    page = context.new_page()
    sign_in(page, server, account)
    start_export(page)
    job = server.the_job(account)

    assert server.settled(account, job["id"])["status"] == "completed"
    wait_for_downloads(page, downloads, 1)
    settled_in_ui(page, job["id"], "completed")
    expect(page.get_by_test_id("export-progress")).to_have_attribute("aria-valuenow", "100")

    page.reload()  # a job already downloaded is never downloaded again after a reload
    expect(page.get_by_test_id(f"history-row-{job['id']}")).to_be_visible(timeout=TIMEOUT_MS)
    past_auto_download_delay(page)
    assert len(downloads) == 1
    path = downloads.saved(0)
    assert is_valid_zip(path)
    assert downloads.started[0].suggested_filename == server.status(account, job["id"])["fileName"]


def test_cancel_in_the_last_moments_before_completion_downloads_nothing(server, context, downloads):
    page = context.new_page()
    # the ZIP is written; the completing transition waits
    account, job_id = held_export(server, page, "before_complete")

    page.get_by_test_id("export-cancel").click()
    expect(page.get_by_test_id("export-status")).to_contain_text("Cancelled", timeout=TIMEOUT_MS)
    server.release(job_id, "before_complete")  # the worker now tries to complete, and loses

    settled_in_ui(page, job_id, "cancelled")
    past_auto_download_delay(page)
    assert len(downloads) == 0
    job = server.status(account, job_id)
    assert job["status"] == "cancelled" and job["reason"] == "user_cancelled"
    types = [event["type"] for event in server.events(account, job_id)]
    assert "export:completed" not in types and types[-1] == "export:cancelled"
    download = server.http.get(f"/api/projects/{account.project_id}/export/{job_id}/download",
                               headers={"Authorization": f"Bearer {account.token}"})
    assert download.status_code == 410

    page.reload()  # a cancelled job is not restored as an active export
    expect(page.get_by_test_id(f"history-row-{job_id}")).to_contain_text("Cancelled", timeout=TIMEOUT_MS)
    restored = ui_job(page, job_id)
    assert restored is None or (restored["status"] == "cancelled" and restored["terminal"])
    expect(page.get_by_test_id("export-cancel")).to_be_hidden()
    past_auto_download_delay(page)
    assert len(downloads) == 0


def test_completion_winning_the_race_is_not_auto_downloaded_but_offered(server, context, downloads):
    page = context.new_page()
    errors = console_errors(page)
    cancels = SocketCancels(page, "hold")
    account, job_id = held_export(server, page, "before_complete")

    page.get_by_test_id("export-cancel").click()
    page.wait_for_function("id => window.__exportd.state.jobs[id]?.cancelRequested", arg=job_id)
    for _ in range(TIMEOUT_MS // 50):  # the cancel left the page and is held on its way
        if cancels.held:
            break
        page.wait_for_timeout(50)
    assert cancels.held, "the cancel never left the page"

    server.release(job_id, "before_complete")  # completion commits first ...
    assert server.settled(account, job_id)["status"] == "completed"
    cancels.release()  # ... then the cancel reaches the server: a conflict

    expect(page.get_by_test_id("export-notice")).to_contain_text("finished before it could be cancelled",
                                                                 timeout=TIMEOUT_MS)
    settled_in_ui(page, job_id, "completed")
    past_auto_download_delay(page)
    assert len(downloads) == 0, "a job the user asked to cancel was auto-downloaded"

    page.get_by_test_id("export-download").click()  # the manual download it offers
    wait_for_downloads(page, downloads, 1)
    assert is_valid_zip(downloads.saved(0))
    assert errors == [], "a lost cancel race is an answer the page expects, not an error"


def test_a_reload_mid_export_resumes_and_downloads_once(server, context, downloads):
    page = context.new_page()
    _, job_id = held_export(server, page, "item", after_items=2)

    page.reload()
    expect(page.get_by_test_id("export-status")).to_contain_text("Processing", timeout=TIMEOUT_MS)
    server.release(job_id, "item")

    wait_for_downloads(page, downloads, 1)
    settled_in_ui(page, job_id, "completed")
    expect(page.get_by_test_id("export-progress")).to_have_attribute("aria-valuenow", "100")
    past_auto_download_delay(page)
    assert len(downloads) == 1
    assert is_valid_zip(downloads.saved(0))


def test_an_offline_page_catches_up_when_back(server, context, downloads):
    page = context.new_page()
    account, job_id = held_export(server, page, "item", after_items=2)
    expect(page.get_by_test_id("export-status")).to_contain_text("Processing", timeout=TIMEOUT_MS)

    context.set_offline(True)
    page.wait_for_function("!window.__exportd.connected", timeout=TIMEOUT_MS)  # the socket is down too
    server.release(job_id, "item")
    assert server.settled(account, job_id)["status"] == "completed"  # finished while the page was away
    context.set_offline(False)

    wait_for_downloads(page, downloads, 1)
    job = settled_in_ui(page, job_id, "completed")
    assert job["seq"] == server.status(account, job_id)["seq"]  # every missed event applied
    past_auto_download_delay(page)
    assert len(downloads) == 1
    assert is_valid_zip(downloads.saved(0))


def test_a_cancel_in_one_tab_shows_in_the_other(server, context, downloads):
    first, second = context.new_page(), context.new_page()
    account, job_id = held_export(server, first, "item", after_items=2)
    open_second_tab(second, server, account)
    expect(second.get_by_test_id("export-status")).to_contain_text("Processing", timeout=TIMEOUT_MS)

    second.get_by_test_id("export-cancel").click()
    expect(first.get_by_test_id("export-status")).to_contain_text("Cancelled", timeout=TIMEOUT_MS)
    server.release(job_id, "item")

    settled_in_ui(first, job_id, "cancelled")
    settled_in_ui(second, job_id, "cancelled")
    past_auto_download_delay(first)
    assert len(downloads) == 0
    assert server.status(account, job_id)["status"] == "cancelled"


def test_two_tabs_download_a_completed_export_once(server, context, downloads):
    first, second = context.new_page(), context.new_page()
    account, job_id = held_export(server, first, "before_complete")
    open_second_tab(second, server, account)
    expect(second.get_by_test_id("export-status")).to_contain_text("Processing", timeout=TIMEOUT_MS)

    server.release(job_id, "before_complete")
    wait_for_downloads(first, downloads, 1)
    settled_in_ui(first, job_id, "completed")
    settled_in_ui(second, job_id, "completed")
    past_auto_download_delay(second)
    assert len(downloads) == 1
    with zipfile.ZipFile(downloads.saved(0)) as archive:
        assert archive.testzip() is None


def test_a_failing_cancel_is_reported_and_rapid_clicks_send_one_request(server, context, downloads):
    page = context.new_page()
    cancels = SocketCancels(page, "drop")  # the socket never answers the cancel ...
    account, job_id = held_export(server, page, "item", after_items=2)

    page.route("**/export/*/cancel", lambda route: route.abort("connectionreset"))  # ... nor does HTTP
    page.get_by_test_id("export-cancel").click()
    expect(page.get_by_test_id("export-notice")).to_contain_text("Could not cancel", timeout=TIMEOUT_MS)
    assert cancels.seen == 1
    assert server.status(account, job_id)["status"] == "processing"  # nothing reached the server
    page.unroute("**/export/*/cancel")
    cancels.mode = "pass"

    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url) if request.url.endswith("/cancel") else None)
    # five clicks in one burst, faster than any answer can come back
    page.get_by_test_id("export-cancel").evaluate("button => { for (let i = 0; i < 5; i++) button.click(); }")
    expect(page.get_by_test_id("export-status")).to_contain_text("Cancelled", timeout=TIMEOUT_MS)
    server.release(job_id, "item")
    settled_in_ui(page, job_id, "cancelled")
    assert cancels.seen - 1 + len(sent) == 1, (cancels.seen, sent)  # one cancel, over the socket
    assert server.status(account, job_id)["status"] == "cancelled"

    page.evaluate("([p, j]) => window.__exportd.download(p, j)", [account.project_id, job_id])
    expect(page.get_by_test_id("export-notice")).to_contain_text("no longer available", timeout=TIMEOUT_MS)
    past_auto_download_delay(page)
    assert len(downloads) == 0


def test_the_dialog_shows_the_servers_defaults_and_every_option_reaches_the_job(server, context, downloads):
    account = server.account(images=3)
    images = server.http.get(f"/api/projects/{account.project_id}",
                             headers={"Authorization": f"Bearer {account.token}"}).json()["images"]
    served = server.http.get("/api/export/defaults").json()
    style, controls = served["options"]["visualizationOptions"], served["controls"]
    page = context.new_page()
    sign_in(page, server, account)
    page.get_by_test_id("export-open").click()

    by = page.get_by_test_id
    by("option-original-images").uncheck()  # the General tab: contents, images, scale
    by("option-documentation").uncheck()
    by(f"option-image-{images[1]['id']}").check()  # picking an image means "only the selected images"
    expect(by("option-images-selected")).to_be_checked()
    by("option-scale-enabled").check()
    by("option-scale").fill("0.65")

    by("tab-visualization").click()
    expect(by("option-color-external")).to_have_value(style["polygonColors"]["external"].lower())
    expect(by("option-color-internal")).to_have_value(style["polygonColors"]["internal"].lower())
    expect(by("option-stroke-width")).to_have_value(str(style["strokeWidth"]))
    expect(by("option-font-size")).to_have_value(str(style["fontSize"]))
    expect(by("option-transparency")).to_have_value(str(round(style["transparency"] * 100)))
    expect(by("option-show-numbers")).to_be_checked(checked=style["showNumbers"])
    for name, slider in (("fontSize", "option-font-size"), ("strokeWidth", "option-stroke-width")):
        for attribute in ("min", "max", "step"):
            expect(by(slider)).to_have_attribute(attribute, str(controls[name][attribute]))
    expect(by("option-transparency")).to_have_attribute("step", "10")
    by("option-show-numbers").uncheck()
    by("option-color-external").fill("#123456")
    by("option-color-internal").fill("#abcdef")
    by("option-stroke-width").fill("5")
    by("option-font-size").fill("20")
    by("option-transparency").fill("50")

    by("tab-formats").click()
    by("option-annotation-json").uncheck()
    by("option-annotation-yolo").check()
    by("option-metrics-excel").uncheck()
    by("option-metrics-csv").check()
    by("option-metrics-json").check()
    by("export-start").click()

    options = server.status(account, server.the_job(account)["id"])["options"]
    assert options == {
        "includeOriginalImages": False, "includeVisualizations": True, "includeDocumentation": False,
        "visualizationOptions": {"showNumbers": False, "polygonColors": {"external": "#123456", "internal": "#abcdef"},
                                 "strokeWidth": 5, "fontSize": 20, "transparency": 0.5},
        "annotationFormats": ["coco", "yolo"], "metricsFormats": ["csv", "json"],
        "selectedImageIds": [images[1]["id"]], "pixelToMicrometerScale": 0.65,
    }


def test_a_full_local_storage_breaks_nothing_and_the_export_downloads_once(server, context, downloads):
    account = server.account(images=2)
    page = context.new_page()
    errors = console_errors(page)
    page.goto(server.url)
    refused = page.evaluate("""() => {  // fill the origin's quota to the last byte
        let size = 1 << 22, index = 0, refused = '';
        while (size >= 1) {
            try { localStorage.setItem(`filler-${index++}`, 'x'.repeat(size)); }
            catch (error) { refused = error.name; size = Math.floor(size / 2); }
        }
        return refused;
    }""")
    assert refused == "QuotaExceededError"

    sign_in(page, server, account)
    start_export(page)
    job_id = server.the_job(account)["id"]
    wait_for_downloads(page, downloads, 1)
    settled_in_ui(page, job_id, "completed")
    past_auto_download_delay(page)
    assert len(downloads) == 1
    assert is_valid_zip(downloads.saved(0))
    assert errors == []
