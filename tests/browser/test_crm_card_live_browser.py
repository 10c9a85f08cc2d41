"""The open CRM card follows the API (issue 8): an agent looks at a conversation; a shop pushes
an order and a deal through `/api/v1` with a token, then moves the deal to another stage and
adds a note: each shows on the agent's card without a reload."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect
import requests

from tests import inbox_helpers as h
from tests.conftest import release_db
from tests.inbox_helpers import shot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_order_and_deal_pushed_through_the_api_show_on_the_open_card(backend, admin_token,
                                                                     world, browser):  # noqa: F811
    server = world["server"]
    # in through the ingest door inline (PostgreSQL runs no rq worker beside the test server)
    h.inbound(world["support"], 4343, "Добрый день, хочу оформить заказ", first_name="Вера")
    release_db()
    page = sign_in(browser, server, "anna@example.com")
    page.click(".row:has-text('Вера')", timeout=10_000)
    page.wait_for_selector("aside.card")
    conversation_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    page.evaluate("window.cardMark = 'no reload'")

    def call(method, path, body):
        response = requests.request(method, f"{server.url}/api/v1{path}", json=body, timeout=30,
                                    headers={"Authorization": f"Bearer {admin_token}"})
        assert response.status_code in (200, 201), response.text
        return response.json()

    customer_id = call("GET", f"/conversations/{conversation_id}/timeline", None)["customer"]["id"]
    call("POST", "/orders", {"external_ref": "SHOP-1042", "total": "249.90", "currency": "eur",
                             "status": "paid", "customer_id": customer_id})
    order = page.wait_for_selector("aside.card .line:has-text('SHOP-1042')", timeout=10_000)
    assert "€249.90" in order.inner_text() and "paid" in order.inner_text()  # the agent's locale (en)

    deal = call("POST", "/deals", {"external_ref": "CRM-77", "title": "Вера: годовая подписка",
                                   "stage": "qualified", "amount": "1200.00", "currency": "EUR",
                                   "customer_id": customer_id})
    line = f"aside.card .deal-line[data-deal='{deal['id']}']"
    page.wait_for_selector(line, timeout=10_000)
    assert page.input_value(f"{line} [data-field=stage]") == "qualified"
    # the stage moves in the shop's CRM: upserted again by external_ref
    call("POST", "/deals", {"external_ref": "CRM-77", "stage": "proposal", "customer_id": customer_id})
    expect(page.locator(f"{line} [data-field=stage]")).to_have_value("proposal", timeout=10_000)
    # and the inline PATCH other integrations (and the board) use
    call("PATCH", f"/deals/{deal['id']}", {"stage": "negotiation", "amount": "1100.00"})
    expect(page.locator(f"{line} [data-field=stage]")).to_have_value("negotiation", timeout=10_000)
    assert page.input_value(f"{line} [data-field=amount]") in ("1100.00", "1100")
    call("POST", "/notes", {"external_ref": "N-1", "text": "Просила счёт на юрлицо",
                            "customer_id": customer_id})
    page.wait_for_selector("aside.card .note:has-text('Просила счёт на юрлицо')", timeout=10_000)

    assert page.evaluate("window.cardMark") == "no reload"
    assert page.locator(".conv-current .msg:has-text('хочу оформить заказ')").count() == 1
    shot(page, "crm-card-live-order-deal")
