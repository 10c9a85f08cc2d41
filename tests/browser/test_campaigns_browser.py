"""The Campaigns page in Polish: an agent builds a segment (the count follows each edit, only
customers of their team's channels), starts a campaign and watches its progress bar reach
100% while the server's own worker sends through the Telegram fake; no stray words, no
overflow at desktop and phone width."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.infra.models import Agent, Customer, Order
from app.infra.state import db
from tests import inbox_helpers as h
from tests.browser.conftest import browser, world  # noqa: F401
from tests.browser.screen import DESKTOP, PHONE, check_axe, check_screen, wait_js
from tests.conftest import release_db

ENGLISH = ("New segment", "Customers in the segment", "Create and start", "Save segment",
           "Opted out", "Progress", "Sending")


def _count(page) -> str:
    return page.inner_text("#segment-count").replace("\u00a0", "").replace(" ", "")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_build_a_segment_start_a_campaign_and_watch_it_finish(backend, world, browser):  # noqa: F811
    support, sales, telegram = world["support"], world["sales"], world["telegram"]
    for n, (channel, tagged) in enumerate([(support, True), (support, True), (support, True),
                                           (support, False), (sales, True)]):
        message = h.inbound(channel, 5100 + n, f"Dzień dobry {n}", first_name=f"Klient{n}")
        customer = db.session.get(Customer, message.customer_id)
        customer.tags = ["vip"] if tagged else []
        if n == 0:   # one order, its item in capitals (the filter ignores the case)
            db.session.add(Order(customer_id=customer.id, status="paid",
                                 items=[{"name": "SUKIENKA letnia Żółta"}]))
    anna = db.session.scalar(select(Agent).where(Agent.email == "anna@example.com"))
    anna.locale = "pl"
    support_id = str(support.id)   # read before release_db: a later read would lock SQLite
    db.session.commit()
    release_db()
    sent_before = len(telegram.calls("sendMessage"))

    page = h.sign_in(browser, world["server"], "anna@example.com")
    page.goto(f"{world['server'].url}/campaigns")
    page.wait_for_selector("body[data-campaigns=ready]")
    # every customer Anna may see (the Sales bot's customer is not hers)
    wait_js(page, "document.getElementById('segment-count').textContent.trim() === '4'")
    page.fill("#segment-form input[name=name]", "VIP")
    page.fill("#segment-form input[name=tags]", "vip")
    wait_js(page, "document.getElementById('segment-count').textContent.trim() === '3'")
    page.fill("#segment-form input[name=orders_min]", "2")      # nobody has ordered twice
    wait_js(page, "document.getElementById('segment-count').textContent.trim() === '0'")
    page.fill("#segment-form input[name=orders_min]", "")
    wait_js(page, "document.getElementById('segment-count').textContent.trim() === '3'")
    page.fill("#segment-form input[name=items_contain]", "żółta sukienka")   # not one text
    wait_js(page, "document.getElementById('segment-count').textContent.trim() === '0'")
    page.fill("#segment-form input[name=items_contain]", "sukienka")
    wait_js(page, "document.getElementById('segment-count').textContent.trim() === '1'")
    page.fill("#segment-form input[name=items_contain]", "")
    wait_js(page, "document.getElementById('segment-count').textContent.trim() === '3'")
    page.fill("#segment-form input[name=contacted_before]", "30")   # nobody was messaged yet
    page.select_option("#segment-form select[name=consent]", support_id)
    wait_js(page, "document.getElementById('segment-count').textContent.trim() === '3'")
    page.fill("#segment-form input[name=contacted_before]", "")
    page.select_option("#segment-form select[name=consent]", "")
    page.click("#segment-form button[type=submit]")
    wait_js(page, "[...document.querySelectorAll('#campaign-form select[name=segment_id] option')]"
                  ".some((o) => o.selected && o.textContent.startsWith('VIP'))")

    page.fill("#campaign-form input[name=name]", "Wyprzedaż")
    page.fill("#campaign-form textarea[name=text]", "Cześć {first_name}! -20% tylko dziś.")
    page.click("#campaign-form button[name=go]")
    page.wait_for_selector(".campaign .status[data-status=done]", timeout=60_000)
    # the progress arrived live over Socket.IO (campaign.progress), not only by polling
    assert int(page.evaluate("document.body.dataset.progressEvents || '0'")) >= 1
    bar = page.locator(".campaign [role=progressbar]")
    assert bar.count() == 1 and bar.get_attribute("aria-valuenow") == "100"
    assert page.locator(".campaign td[data-count=sent]").inner_text() == "3"
    texts = sorted(c.params["text"] for c in telegram.calls("sendMessage")[sent_before:])
    assert texts == [f"Cześć Klient{n}! -20% tylko dziś." for n in range(3)]

    body = page.inner_text("main")
    for english in ENGLISH:
        assert english not in body, english
    assert "Zakończona" in body and "Wysłane" in body
    h.shot(page, "campaigns-done-desktop")
    from tests.conftest import OUTPUT

    page.locator("#campaign-list").screenshot(path=str(OUTPUT / "campaigns-results.png"))
    check_screen(page, (DESKTOP, PHONE))
    page.set_viewport_size(PHONE)
    h.shot(page, "campaigns-done-phone")
    check_axe(page, "campaigns")

    # a customer answers "STOP": the opt-out is on their card in the inbox
    from app.infra.models import OptOut
    from tests.conftest import wait_until

    h.inbound(support, 5103, "STOP", first_name="Klient3")
    wait_until(lambda: db.session.scalar(select(OptOut.id)) or db.session.commit(), timeout=30,
               message="the opt-out recorded")
    release_db()
    page.set_viewport_size(DESKTOP)
    page.goto(world["server"].url + "/")
    page.wait_for_selector("body[data-ready=yes]")
    page.click(".row:has-text('Klient3')", timeout=10_000)
    line = page.wait_for_selector("aside.card .opt-out", timeout=10_000)
    assert "Support bot" in line.inner_text() and "poprosił w wiadomości" in line.inner_text()
