"""The export dialog (its picker, its fit in 400 and 860 px windows), the panel (a failure and Try
again, warnings, toasts, the 429 notice, the history's pages), the language switch, and a page that
logs no error for answers it expects, in headless Chromium against a real `exportd serve`."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.support import wait_for
from tests.browser.test_export_flows import TIMEOUT_MS, console_errors, sign_in


def test_the_language_switch_is_remembered_across_a_reload_and_every_text_follows(server, context, downloads):
    account = server.account(images=2)
    page = context.new_page()
    errors = console_errors(page)
    sign_in(page, server, account)  # the first visit has no session: answered without an error
    by = page.get_by_test_id
    expect(by("export-open")).to_have_text("Export…")

    by("language").select_option("cs")
    expect(by("export-open")).to_have_text("Exportovat…")
    expect(by("history-refresh")).to_have_text("Obnovit")
    expect(page.locator("html")).to_have_attribute("lang", "cs")

    page.reload()
    expect(by("export-open")).to_have_text("Exportovat…", timeout=TIMEOUT_MS)
    expect(by("language")).to_have_value("cs")

    by("export-open").click()
    expect(by("tab-visualization")).to_have_text("Vizualizace")
    expect(by("export-start")).to_have_text("Spustit export")
    by("export-start").click()
    job_id = server.the_job(account)["id"]
    assert server.settled(account, job_id)["status"] == "completed"
    expect(by("export-status")).to_have_text("Dokončeno", timeout=TIMEOUT_MS)
    expect(by("toast").filter(has_text="Export dokončen")).to_be_visible(timeout=TIMEOUT_MS)
    expect(by(f"history-row-{job_id}")).to_contain_text("Dokončeno", timeout=TIMEOUT_MS)
    assert errors == []


def test_the_picker_searches_pages_and_selects_and_the_selection_reaches_the_job(server, context, downloads):
    account = server.account(images=32)  # two pages of 30
    headers = {"Authorization": f"Bearer {account.token}"}
    images = server.http.get(f"/api/projects/{account.project_id}", headers=headers).json()["images"]
    page = context.new_page()
    page.set_viewport_size({"width": 860, "height": 860})
    sign_in(page, server, account)
    by = page.get_by_test_id
    by("export-open").click()
    expect(by("export-start")).to_be_in_viewport()  # the dialog fits, its buttons visible

    thumbnails = by("option-image-list").locator("img")
    expect(thumbnails).to_have_count(30)
    expect(by("picker-page")).to_have_text("Page 1 of 2")
    page.wait_for_function("""() => [...document.querySelectorAll('[data-testid=option-image-list] img')]
        .slice(0, 6).every((img) => img.complete && img.naturalWidth > 0 && img.naturalWidth <= 160)""",
                           timeout=TIMEOUT_MS)  # served by the API, small

    by("picker-all").click()
    expect(by("picker-count")).to_have_text("32 of 32 selected")
    expect(by("option-images-selected")).to_be_checked()
    by("picker-next").click()
    expect(thumbnails).to_have_count(2)
    by("picker-none").click()
    expect(by("picker-count")).to_have_text("0 of 32 selected")

    wanted = sorted(images, key=lambda image: image["name"])[:2]
    by("picker-sort").select_option("name")
    by("picker-search").fill(wanted[0]["name"].rsplit(".", 1)[0])
    expect(by(f"option-image-{wanted[0]['id']}")).to_be_visible()
    by(f"option-image-{wanted[0]['id']}").check()
    by("picker-search").fill("")
    by(f"option-image-{wanted[1]['id']}").check()
    expect(by("picker-count")).to_have_text("2 of 32 selected")
    by("export-start").click()

    job = server.the_job(account)
    assert sorted(server.status(account, job["id"])["options"]["selectedImageIds"]) == sorted(i["id"] for i in wanted)


def test_a_400_px_window_scrolls_only_downwards_and_the_dialog_buttons_show(server, context, downloads):
    account = server.account(images=2)
    page = context.new_page()
    page.set_viewport_size({"width": 400, "height": 760})
    sign_in(page, server, account)
    by = page.get_by_test_id
    widest = "() => document.scrollingElement.scrollWidth"
    assert page.evaluate(widest) <= 400
    by("export-open").click()
    for tab in ("tab-general", "tab-visualization", "tab-formats"):
        by(tab).click()
        expect(by("export-start")).to_be_in_viewport()
        expect(by("export-close")).to_be_in_viewport()
        box = page.locator("#export-dialog").bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 400
    by("export-start").click()
    job_id = server.the_job(account)["id"]
    assert server.settled(account, job_id)["status"] == "completed"
    expect(by(f"history-row-{job_id}")).to_be_visible(timeout=TIMEOUT_MS)
    assert page.evaluate(widest) <= 400  # the history too


def test_the_429_notice_goes_once_the_export_that_caused_it_ends(server, context, downloads):
    account = server.account(images=2)
    server.hold("item", after_items=1)
    page = context.new_page()
    sign_in(page, server, account)
    by = page.get_by_test_id
    by("export-open").click()
    by("export-start").click()
    first = server.the_job(account)["id"]
    server.held(first, "item")

    by("export-open").click()  # a second export while the first runs: one active export per user
    by("export-start").click()
    expect(by("export-notice")).to_be_visible(timeout=TIMEOUT_MS)
    expect(by("export-notice")).to_have_attribute("data-kind", "page")
    server.release(first, "item")
    assert server.settled(account, first)["status"] == "completed"
    expect(by("export-notice")).to_be_hidden(timeout=TIMEOUT_MS)


def test_a_failed_export_says_why_and_try_again_repeats_it_and_warnings_read_as_text(server, context, downloads):
    account = server.account(images=2)
    server.hold("item", after_items=1)
    page = context.new_page()
    sign_in(page, server, account)
    by = page.get_by_test_id
    by("export-open").click()
    by("option-documentation").uncheck()
    by("export-start").click()
    first = server.the_job(account)["id"]
    server.held(first, "item")
    expect(by("export-status")).to_have_text("Processing", timeout=TIMEOUT_MS)

    # The tab hears that the export failed (the hook feeds an event as the socket would).
    page.evaluate("""([jobId, projectId]) => {
        const job = window.__exportd.state.jobs[jobId];
        const now = new Date().toISOString();
        window.__exportd.receive({type: 'export:failed', jobId, projectId, userId: 'u', seq: job.seq + 1,
            status: 'failed', timestamp: now, failedAt: now, error: 'The storage is full.', code: 'SERVICE_UNAVAILABLE',
            retryable: true});
    }""", [first, account.project_id])
    expect(by("export-status")).to_have_text("Failed", timeout=TIMEOUT_MS)
    expect(by("export-message")).to_contain_text("The storage is full.")
    expect(by("toast").filter(has_text="Export failed: The storage is full.")).to_be_visible()
    server.release_all()  # disarmed: the server's own job ends (and frees the slot), the next is not held
    assert server.settled(account, first)["status"] == "completed"

    # One original goes missing from storage, so the second export completes with a warning.
    next(iter(sorted(server.data.rglob(f"projects/{account.project_id}/*.png")))).unlink()
    by("export-retry").click()
    second = wait_for(lambda: next((job["id"] for job in server.jobs(account) if job["id"] != first), None),
                      message="the export to start again")
    assert server.status(account, second)["options"] == server.status(account, first)["options"]
    assert server.settled(account, second)["status"] == "completed"
    expect(by("export-status")).to_have_text("Completed", timeout=TIMEOUT_MS)
    expect(by("export-warnings")).to_contain_text("missing from storage")
    expect(by("export-warnings").locator("li")).to_have_count(len(server.status(account, second)["warnings"]))


def test_the_history_pages_past_twenty(server, context, downloads):
    account = server.account(images=1)
    headers = {"Authorization": f"Bearer {account.token}"}
    only_docs = {"options": {"includeOriginalImages": False, "includeVisualizations": False,
                             "includeDocumentation": True, "annotationFormats": [], "metricsFormats": []}}
    jobs = []
    for _ in range(21):  # one active export per user: each in turn
        response = server.http.post(f"/api/projects/{account.project_id}/export", json=only_docs, headers=headers)
        assert response.status_code == 202, response.text
        jobs.append(response.json()["id"])
        server.settled(account, jobs[-1])
    page = context.new_page()
    sign_in(page, server, account)
    by = page.get_by_test_id
    rows = by("export-history").locator("tbody tr")
    expect(rows).to_have_count(20, timeout=TIMEOUT_MS)
    expect(by(f"history-row-{jobs[0]}")).to_have_count(0)  # the oldest is on the next page
    by("history-more").click()
    expect(rows).to_have_count(21)
    expect(by(f"history-row-{jobs[0]}")).to_be_visible()
    expect(by("history-more")).to_be_hidden()
