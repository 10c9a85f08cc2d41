"""The inbox's search box in a real browser: word forms, dates on every hit, arrow keys and
Enter, "More results" beyond the first page, and a message hit opening its conversation
scrolled to that message, highlighted."""
from __future__ import annotations

import re

import pytest

from tests.browser.screen import wait_js
from tests.inbox_helpers import shot, sign_in, telegram_post

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STRAY = re.compile(r"\b(null|undefined|NaN)\b|\[object Object\]")


def _no_stray_words(page, selector: str) -> None:
    body = page.inner_text(selector)
    assert not STRAY.search(body), body


def _fits(page, selector: str) -> None:
    overflow = page.evaluate(f"""() => {{
        const n = document.querySelector({selector!r});
        const r = n.getBoundingClientRect();
        return {{ inner: n.scrollWidth - n.clientWidth, right: r.right - window.innerWidth }};
    }}""")
    assert overflow["inner"] <= 1 and overflow["right"] <= 1, overflow


@pytest.mark.parametrize("backend", ["sqlite"])
def test_search_dropdown_dates_keyboard_paging_and_jump_to_message(backend, world, browser):
    server, support = world["server"], world["support"]
    forms = ["заказ", "заказа", "заказы", "заказом", "заказу"]
    for i in range(24):   # 24 customers asking about an order, in different word forms
        telegram_post(server, support, "support-secret", 8000 + i, 6000 + i,
                      f"Вопрос {i}: где мой {forms[i % len(forms)]}?", f"Клиент{i:02d}")
    # one customer's matching message is old: thirty newer messages follow it
    telegram_post(server, support, "support-secret", 8100, 6100,
                  "Proszę o fakturę do zamówieniu nr 5512", "Paweł")
    for i in range(30):
        telegram_post(server, support, "support-secret", 8101 + i, 6100, f"Wiadomość {i}", "Paweł")

    page = sign_in(browser, server, "anna@example.com")
    page.keyboard.press("/")
    page.keyboard.type("заказы")
    page.wait_for_selector("#search-results .message-hit")
    hits = page.locator("#search-results .message-hit")
    assert hits.count() == 20
    # every hit has its date, in the agent's language; nothing stray in the dropdown
    dates = page.locator("#search-results .message-hit time.when")
    assert dates.count() == 20 and all(t.strip() for t in dates.all_inner_texts())
    assert page.locator("#search-results .message-hit time.when").first.get_attribute("datetime")
    _no_stray_words(page, "#search-results")
    _fits(page, "#search-results")
    # word forms are highlighted as written
    marked = set(page.locator("#search-results .message-hit mark").all_inner_texts())
    assert {"заказ", "заказа", "заказом", "заказу"} <= {m.lower() for m in marked}
    shot(page, "search-dropdown")

    # "More results" brings the rest, by keyboard: End of the list, Enter
    more = page.locator("#search-results .more-hit")
    assert more.count() == 1
    for _ in range(25):
        page.keyboard.press("ArrowDown")
    assert page.locator("#search-results .more-hit[aria-selected=true]").count() == 1
    page.keyboard.press("Enter")
    wait_js(page, "document.querySelectorAll('#search-results .message-hit').length === 24")
    assert page.locator("#search-results .more-hit").count() == 0
    # the focus stays in the box, on the first new hit
    assert page.evaluate("document.activeElement.id") == "search"
    assert page.locator("#search-results .message-hit").nth(20).get_attribute("aria-selected") == "true"

    # arrows up and down move the selection; Enter opens the selected hit's conversation
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")
    chosen = page.locator("#search-results .hit[aria-selected=true]")
    assert chosen.count() == 1
    chosen_text = chosen.locator(".snippet").inner_text()
    page.keyboard.press("Enter")
    assert page.locator("#search-results").is_hidden()
    page.wait_for_selector(f".msg.search-hit:has-text({chosen_text.strip()!r})")

    # a Polish word form finds the old message; Enter opens it scrolled into view, marked
    page.fill("#search", "")
    page.click("#search")
    page.keyboard.type("zamówienia")
    page.wait_for_selector("#search-results .message-hit:has-text('5512')")
    assert page.locator("#search-results .message-hit").count() == 1
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.wait_for_selector(".msg.search-hit:has-text('5512')")
    target = page.locator(".msg.search-hit")
    assert "zamówieniu nr 5512" in target.inner_text()
    # the word form that matched is marked inside the message
    assert target.locator(".text mark").all_inner_texts() == ["zamówieniu"]
    assert page.locator(".msg.search-hit").count() == 1
    wait_js(page, """() => {
        const n = document.querySelector('.msg.search-hit');
        const box = document.getElementById('messages').getBoundingClientRect();
        const r = n.getBoundingClientRect();
        return r.top >= box.top - 1 && r.bottom <= box.bottom + 1;
    }""")
    # it is not the newest message: the jump really scrolled
    assert page.evaluate("""() => {
        const list = document.querySelectorAll('#messages .msg');
        return !list[list.length - 1].classList.contains('search-hit');
    }""")
    shot(page, "search-jump-to-message")

    # a partial phone number (as the card shows it) is a query too: nothing stray, no error
    page.fill("#search", "")
    page.keyboard.type("000000")
    page.wait_for_selector("#search-results .empty")
    _no_stray_words(page, "#search-results")


@pytest.mark.parametrize("backend", ["sqlite"])
def test_search_dropdown_fits_a_phone(backend, world, browser):
    server, support = world["server"], world["support"]
    telegram_post(server, support, "support-secret", 8200, 6200,
                  "Здравствуйте, заказ №4411 пришёл без чека, очень длинное сообщение " * 3)
    page = sign_in(browser, server, "anna@example.com", width=390)
    page.fill("#search", "заказа")
    try:
        page.wait_for_selector("#search-results .message-hit time.when", timeout=5000)
    finally:
        shot(page, "search-dropdown-phone")
    _no_stray_words(page, "#search-results")
    _fits(page, "#search-results")
    shot(page, "search-dropdown-phone")
