"""What an agent sees on the first day (issue 19, "wrong or missing on screen"): no stray
`null`, feedback for an empty reply, errors said for a person in a toast that leaves Send
free, uploads too large refused in MB before uploading, totals in the sidebar, resolve with
Undo moving on to the next conversation, `?` help, the list's cursor after a re-sort, and the
offline banner with sending disabled."""
from __future__ import annotations

import pytest

from tests.browser.screen import check_screen, frames, wait_js
from tests.inbox_helpers import shot, sign_in, telegram_post

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def boxes_overlap(a, b) -> bool:
    return not (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
                or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])


@pytest.mark.parametrize("backend", ["sqlite"])
def test_first_day_screen_feedback(backend, world, browser):
    server, support = world["server"], world["support"]
    telegram_post(server, support, "support-secret", 9001, 4242, "Где мой заказ?")
    telegram_post(server, support, "support-secret", 9002, 6161, "Hello, a question", "Pavel")
    page = sign_in(browser, server, "anna@example.com")
    page.wait_for_selector(".row:has-text('Pavel')", timeout=10_000)
    # the sidebar: totals beside the unread badges, a one-line badge, no "·" header
    page.wait_for_selector("[data-total=open]:text-is('2')", timeout=10_000)
    assert page.inner_text("[data-count=open]") == "2"
    heights = page.eval_on_selector_all(".view .count:not(.zero)", "ns => ns.map(n => n.offsetHeight)")
    assert heights and max(heights) <= 20, heights
    assert "·" not in [h.strip() for h in page.locator(".views h3").all_inner_texts()]

    # assigned to me: no `null` before the assignee select
    page.click(".row:has-text('Ольга')")
    page.wait_for_selector("aside.card")
    page.click("[data-action=assign-me]")
    wait_js(page, "window.threadline.state.current.conversation.assignee_id !== null")
    page.wait_for_selector("[data-action=assign-me]", state="detached")
    assert "null" not in page.inner_text("#actions")
    # the cursor stays on the open conversation when the list re-sorts
    telegram_post(server, support, "support-secret", 9003, 7171, "Newest of all", "Ivan")
    page.wait_for_selector(".row:nth-child(1):has-text('Ivan')", timeout=10_000)
    assert "Ольга" in page.inner_text(".row.cursor")
    # search with nothing found: no `nullnull`
    page.fill("#search", "qqqzzzxxx")
    page.wait_for_selector("#search-results:not([hidden]) .empty", timeout=10_000)
    assert "null" not in page.inner_text("#search-results")
    page.keyboard.press("Escape")

    # an empty reply says so
    page.fill("#composer-text", "")
    page.click("#composer-send")
    page.wait_for_selector("#composer-hint:not([hidden])")
    assert page.inner_text("#composer-hint") == "Write a message first."
    # a network failure: a human message, in a toast that leaves Send free
    page.route("**/api/v1/conversations/*/messages", lambda route: route.abort("internetdisconnected"))
    page.fill("#composer-text", "Сейчас проверю")
    page.click("#composer-send")
    page.wait_for_selector("#toast:not([hidden])")
    toast = page.inner_text("#toast")
    assert "Could not reach the server" in toast and "Failed to fetch" not in toast
    assert not boxes_overlap(page.locator("#toast").bounding_box(), page.locator("#composer-send").bounding_box())
    assert page.input_value("#composer-text") == "Сейчас проверю"  # the draft is kept
    page.unroute("**/api/v1/conversations/*/messages")
    # a file over the limit: refused in MB before a byte is uploaded
    uploads = []
    page.on("request", lambda r: uploads.append(r.url) if "/api/v1/uploads" in r.url else None)
    page.evaluate("window.threadline.boot.max_upload_bytes = 2 * 1024 * 1024")
    page.set_input_files("#composer-file", files=[{"name": "big.pdf", "mimeType": "application/pdf",
                                                   "buffer": b"%PDF" + b"0" * (3 * 1024 * 1024)}])
    page.wait_for_selector("#toast:has-text('big.pdf is 3 MB: files up to 2 MB can be attached.')")
    assert uploads == [] and page.locator("#composer-chips .chip").count() == 0

    # `?` shows the shortcuts
    page.click(".thread-head .customer-name")
    page.keyboard.press("?")
    page.wait_for_selector("dialog#shortcut-help[open]")
    assert "Keyboard shortcuts" in page.inner_text("dialog#shortcut-help")
    page.keyboard.press("Escape")
    page.wait_for_selector("dialog#shortcut-help:not([open])", state="attached")

    # resolve: feedback with Undo, and the next conversation opens
    olga = page.evaluate("window.threadline.state.current.id")
    page.click("[data-action=resolve]")
    page.wait_for_selector("#toast:has-text('Conversation resolved.') .toast-action:text('Undo')")
    wait_js(page, f"window.threadline.state.current && window.threadline.state.current.id !== {olga}")
    page.click("#toast .toast-action")
    page.wait_for_selector(f".row[data-conversation='{olga}']", timeout=10_000)
    wait_js(page, f"window.threadline.state.current.id === {olga}"
                           " && window.threadline.state.current.conversation.status === 'open'")

    # offline: a banner, Send disabled, the draft kept; back online: all back
    page.fill("#composer-text", "Черновик")
    page.evaluate("window.threadline.socket.disconnect()")
    page.wait_for_selector("#offline-banner:not([hidden])")
    assert "your draft is kept" in page.inner_text("#offline-banner")
    assert page.is_disabled("#composer-send")
    shot(page, "inbox-offline")
    page.evaluate("window.threadline.socket.connect()")
    page.wait_for_selector("#offline-banner", state="hidden")
    assert page.is_enabled("#composer-send") and page.input_value("#composer-text") == "Черновик"
    page.context.set_offline(True)
    page.wait_for_selector("#offline-banner:not([hidden])")
    assert page.is_disabled("#composer-send")
    page.context.set_offline(False)
    page.wait_for_selector("#offline-banner", state="hidden", timeout=20_000)
    frames(page)
    check_screen(page)
    shot(page, "inbox-first-day")
