"""The inbox at phone width and for assistive technology (issue 19): at 390 px one pane at a
time (views → list → thread → card) with a way back and the composer in reach, from the list
to a sent reply; axe-core finds no critical or serious violation on the inbox at desktop and
phone width."""
from __future__ import annotations

import pytest

from tests.browser.screen import DESKTOP, PHONE, check_axe, check_screen
from tests.inbox_helpers import shot, sign_in, telegram_post

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def in_view(page, selector: str) -> bool:
    box = page.locator(selector).bounding_box()
    size = page.viewport_size
    return bool(box) and box["x"] >= 0 and box["y"] >= 0 and \
        box["x"] + box["width"] <= size["width"] and box["y"] + box["height"] <= size["height"]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_phone_flow_from_list_to_reply_and_axe(backend, world, browser):
    server, support = world["server"], world["support"]
    telegram_post(server, support, "support-secret", 9501, 4242, "Где мой заказ? Номер 1042")
    telegram_post(server, support, "support-secret", 9502, 6161, "Second customer", "Pavel")
    page = sign_in(browser, server, "anna@example.com", width=PHONE["width"])
    page.set_viewport_size(PHONE)
    page.wait_for_selector(".row:has-text('Ольга')", timeout=10_000)
    # the list alone, the views one tap away
    assert page.get_attribute("body", "data-pane") == "list"
    assert not page.is_visible("#views") and not page.is_visible("#thread")
    check_axe(page, "inbox list at 390 px")
    page.click("#phone-bar [data-pane-to=views]")
    page.wait_for_selector("#views [data-view=open]", state="visible")
    assert not page.is_visible(".middle")
    check_screen(page, sizes=(PHONE,))
    page.click("#views [data-view=open]")
    page.wait_for_selector(".row:has-text('Ольга')", state="visible")
    # a conversation: the thread alone, the composer reachable, a way back
    page.click(".row:has-text('Ольга')")
    page.wait_for_selector("#composer-send", state="visible")
    assert not page.is_visible(".middle") and not page.is_visible("aside.card")
    assert in_view(page, "#composer-send") and in_view(page, "#composer-text")
    check_screen(page, sizes=(PHONE,))
    check_axe(page, "inbox thread at 390 px")
    shot(page, "inbox-phone-thread")
    page.fill("#composer-text", "Заказ 1042 уже в пути")
    page.click("#composer-send")
    page.wait_for_selector(".msg.out:has-text('Заказ 1042 уже в пути')", timeout=10_000)
    # the card, and back
    page.click(".thread-head [data-pane-to=card]")
    page.wait_for_selector("aside.card h3:text('Ольга')", state="visible")
    assert not page.is_visible("#composer")
    check_screen(page, sizes=(PHONE,))
    page.click("aside.card [data-pane-to=thread]")
    page.wait_for_selector("#composer", state="visible")
    page.click(".thread-head [data-pane-to=list]")
    page.wait_for_selector(".row:has-text('Ольга')", state="visible")
    # desktop: every pane side by side, and axe-clean with a thread open
    page.set_viewport_size(DESKTOP)
    page.click(".row:has-text('Pavel')")
    page.wait_for_selector(".thread-head .customer-name:text('Pavel')")
    for selector in ("#views", ".middle", "#composer", "aside.card"):
        assert page.is_visible(selector), selector
    assert not page.is_visible("[data-pane-to=card]")
    check_axe(page, "inbox thread at 1440 px")
    # in Russian (longer words): nothing cut or spilling over, at either width
    status = page.evaluate("""fetch('/api/v1/inbox/me', {method: 'PATCH', credentials: 'same-origin',
        headers: {'Content-Type': 'application/json',
                  'X-CSRFToken': document.querySelector('meta[name=csrf-token]').content},
        body: JSON.stringify({locale: 'ru'})}).then((r) => r.status)""")
    assert status == 200
    page.reload()
    page.wait_for_selector("body[data-ready=yes][data-live=yes]")
    page.click(".row:has-text('Ольга')")
    page.wait_for_selector("aside.card h4:text('Контакты')")
    assert page.inner_text("#composer-send") == "Отправить"
    check_screen(page)
    page.set_viewport_size(PHONE)
    page.click(".thread-head [data-pane-to=card]")
    page.wait_for_selector("aside.card [data-pane-to=thread]:text('← Назад')", state="visible")
    check_screen(page, sizes=(PHONE,))
    shot(page, "inbox-phone-card-ru")
