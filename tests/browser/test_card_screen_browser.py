"""The customer's card and thread as a salesperson needs them (issue 19): the site chat's
pre-chat email and phone and Telegram's @username as handles, the first-touch source, the
visitor typing, inline edits with "Saved" or the error beside the field, a note and a deal
made on the card, the deal's expected close date shown after a reload, snooze presets with
the snooze-until time in the thread and in Snoozed, and a customer's conversations in the
order they happened ("Later conversation" below the opened older one)."""
from __future__ import annotations

import re

import pytest
import requests
import socketio

from app.domain.channels import add_channel
from app.infra.state import db
from tests.browser.screen import check_axe, check_screen, wait_js
from tests.conftest import release_db, wait_until
from tests.inbox_helpers import shot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LANDING = ("https://shop.example/landing?utm_source=google&utm_medium=cpc"
           "&utm_campaign=spring&gclid=abc123")


def telegram_update(server, channel, update_id, text, username="olga_shop"):
    update = {"update_id": update_id, "message": {
        "message_id": update_id, "date": 1_800_000_000 + update_id, "text": text,
        "from": {"id": 4242, "is_bot": False, "first_name": "Ольга", "username": username},
        "chat": {"id": 4242, "type": "private"}}}
    response = requests.post(f"{server.url}/webhooks/telegram/{channel.id}", json=update, timeout=30,
                             headers={"X-Telegram-Bot-Api-Secret-Token": "support-secret"})
    assert response.status_code == 200, response.text


def visitor(server, channel):
    """A site visitor through the real widget socket: pre-chat form, landing page with UTM."""
    frame = requests.get(f"{server.url}/widget/frame?c={channel.public_id}", timeout=30,
                         headers={"Referer": "https://shop.example/landing"})
    assert frame.status_code == 200
    token = re.search(r'"frame": "([^"]+)"', frame.text).group(1)
    client = socketio.Client()
    client.connect(server.url, namespaces=["/widget"], transports=["websocket"], auth={
        "frame": token, "visitor": None, "page": {"url": LANDING, "referrer": "https://www.google.com/"},
        "lang": "ru", "after": 0, "prechat": {"name": "Мария", "email": "maria@example.com",
                                               "phone": "+7 916 123-45-67"}})
    return client


@pytest.mark.parametrize("backend", ["sqlite"])
def test_card_and_thread_for_sales(backend, world, admin_token, browser):
    server, support = world["server"], world["support"]
    site = add_channel("webchat", "Site chat", {"allowed_origins": "https://shop.example",
                                                "secret": "widget-secret-123", "prechat": "true"},
                       teams=["Support"])
    db.session.commit()
    release_db()
    auth = {"Authorization": f"Bearer {admin_token}"}

    def call(method, path, body=None):
        response = requests.request(method, f"{server.url}/api/v1{path}", json=body, headers=auth, timeout=30)
        assert response.status_code in (200, 201), response.text
        return response.json()

    # Ольга came through a deep link; her first conversation is resolved, then she writes again
    def open_ids():
        return [c["id"] for c in call("GET", "/conversations?status=open")["items"]]

    telegram_update(server, support, 8001, "/start promo_spring")
    wait_until(open_ids, message="the first conversation")
    first = open_ids()[0]
    call("PATCH", f"/conversations/{first}", {"status": "resolved"})
    telegram_update(server, support, 8002, "Второй вопрос про заказ")
    wait_until(open_ids, message="the second conversation")
    second = open_ids()[0]
    assert second != first
    call("POST", "/custom-fields", {"key": "city", "label": "Город", "type": "text"})
    client = visitor(server, site)
    try:
        sent = client.call("message", {"text": "Здравствуйте, вопрос по доставке"}, namespace="/widget", timeout=30)
        assert sent and sent.get("ok") is not False, sent
        page = sign_in(browser, server, "anna@example.com")

        # an older conversation opened: the newer one is "Later conversation", below it
        page.goto(f"{server.url}/conversations/{first}")
        page.wait_for_selector("body[data-ready=yes]")
        page.wait_for_selector(".conv-current .msg:has-text('/start promo_spring')")
        later = page.locator(f".conv-earlier[data-conv='{second}'] .fold")
        assert later.inner_text().startswith("▸ Later conversation")
        order = page.eval_on_selector_all("#messages > [data-conv]", "ns => ns.map(n => Number(n.dataset.conv))")
        assert order == [first, second]
        # Telegram's @username and the deep-link payload on the card
        assert "@olga_shop" in page.inner_text("aside.card .identity[data-kind=telegram]")
        assert page.inner_text("[data-source=src_payload]") == "promo_spring"

        # the site visitor: pre-chat handles, first touch, typing
        page.click(".row:has-text('Мария')")
        page.wait_for_selector("aside.card h3:text('Мария')")
        card = page.inner_text("aside.card")
        assert "maria@example.com" in card and "916" in card and "pre-chat form" in card
        webchat_handle = page.inner_text("aside.card .identity[data-kind=webchat] .handle")
        assert webchat_handle.startswith("site visitor …") and len(webchat_handle) < 24
        for key, value in (("src_utm_source", "google"), ("src_utm_medium", "cpc"), ("src_utm_campaign", "spring"),
                           ("src_referrer", "https://www.google.com/"), ("src_landing", LANDING),
                           ("src_ad", "gclid: abc123"), ("src_channel", "webchat")):
            assert page.inner_text(f"[data-source={key}]") == value, key
        client.emit("typing", {"typing": True}, namespace="/widget")
        page.wait_for_selector("#presence [data-visitor-typing]:has-text('Мария is typing')", timeout=10_000)

        # inline edits: saved beside the field; an error beside the field
        page.click(".card-edit-box summary")
        page.fill("#card-company", "ООО Ромашка")
        page.press("#card-company", "Enter")
        page.wait_for_selector("#card-company-status.ok:text('Saved')")
        page.fill("#card-cf-city", "Казань")  # an admin-defined field, by its label
        page.press("#card-cf-city", "Enter")
        page.wait_for_selector("#card-cf-city-status.ok:text('Saved')")
        assert page.inner_text("label[for=card-cf-city]") == "Город"
        customer_id = page.evaluate("window.threadline.state.current.data.customer.id")
        assert call("GET", f"/customers/{customer_id}")["custom_fields"]["city"] == "Казань"
        page.fill("#card-tags", "vip, опт")
        page.press("#card-tags", "Enter")
        page.wait_for_selector("aside.card .tags .tag:text('опт')", timeout=10_000)
        page.click(".card-edit-box summary") if not page.is_visible("#card-phone") else None
        page.fill("#card-phone", "not a phone")
        page.press("#card-phone", "Enter")
        page.wait_for_selector("#card-phone-status.error")
        assert page.get_attribute("#card-phone", "aria-invalid") == "true"
        assert "Saved" not in page.inner_text("#card-phone-status")
        check_axe(page, "the card with its editor open")
        # a note and a deal from the card
        page.fill("#card-note", "Перезвонить в понедельник")
        page.click("[data-action=card-note]")
        page.wait_for_selector("aside.card .note:has-text('Перезвонить в понедельник')", timeout=10_000)
        page.click(".deal-form summary")
        page.fill("#new-deal-title", "Мария: доставка")
        page.fill("#new-deal-amount", "9150.50")
        page.click("[data-action=create-deal]")
        deal = page.wait_for_selector(".deal-line:has-text('Мария: доставка')", timeout=10_000)
        deal_id = deal.get_attribute("data-deal")
        date = f".deal-line[data-deal='{deal_id}'] [data-field=expected_close]"
        page.fill(date, "2026-12-24")
        page.dispatch_event(date, "change")
        wait_js(page, f"""() => window.threadline.state.current.data.card.deals
            .some((d) => d.id === {deal_id} && d.expected_close === '2026-12-24')""")
        page.reload()
        page.wait_for_selector(date)
        assert page.input_value(date) == "2026-12-24"

        # snooze: presets; the time shown in the thread and in Snoozed
        page.select_option("[data-action=status]", "snoozed")
        page.wait_for_selector("#snooze-menu:not([hidden]) [data-snooze=later]")
        assert page.locator("#snooze-menu [data-snooze=next-week]").count() == 1
        check_axe(page, "the snooze menu")
        page.click("#snooze-menu [data-snooze=tomorrow]")
        page.wait_for_selector("#actions .snoozed-until:has-text('Snoozed until')", timeout=10_000)
        assert re.search(r"09:00|9:00", page.inner_text("#actions .snoozed-until"))
        page.click("[data-view=snoozed]")
        page.wait_for_selector(".row:has-text('Мария') .snoozed-until", timeout=10_000)
        check_screen(page)
        shot(page, "card-for-sales")
    finally:
        client.disconnect()
