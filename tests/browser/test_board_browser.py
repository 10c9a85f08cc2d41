"""The sales board in a real browser against a real `threadline serve`: one agent drags a
deal to another stage; the other agent's board follows without a reload."""
from __future__ import annotations

import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from tests import inbox_helpers as h
from tests.inbox_helpers import shot, sign_in
from tests.conftest import release_db, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def open_board(browser, server, email: str):
    page = sign_in(browser, server, email, width=1600)
    page.click("a.board-link")  # the inbox header links to the board
    page.wait_for_selector("body[data-ready=yes]")
    page.wait_for_selector("body[data-live=yes]")
    return page


@pytest.fixture
def world(ctx, admin, start_server):
    from datetime import date

    from app.infra.models import Customer, Deal
    from app.infra.state import db

    sam = h.agent("sam@example.com", "Sam Sales", ["Sales"])
    h.agent("anna@example.com", "Anna Agent", ["Support"])
    acme = Customer(name="ACME GmbH", company="ACME")
    globex = Customer(name="Globex")
    db.session.add_all([acme, globex])
    db.session.flush()
    deal = Deal(customer_id=acme.id, title="ACME 50 seats", stage="qualified",
                amount=Decimal("12000.00"), currency="EUR", owner_id=sam.id,
                expected_close=date(2027, 3, 31))
    db.session.add_all([deal, Deal(customer_id=globex.id, title="Globex pilot", stage="proposal",
                                   amount=Decimal("3000.00"), currency="EUR")])
    db.session.commit()
    h.reset_login_limit()
    release_db()
    return {"server": start_server(), "deal_id": deal.id}


@pytest.mark.parametrize("backend", ["sqlite"])
def test_drag_a_deal_to_another_stage_live_for_the_other_agent(backend, world, browser):
    from app.infra.models import Deal
    from app.infra.state import db

    server, deal_id = world["server"], world["deal_id"]
    a = open_board(browser, server, "sam@example.com")
    b = open_board(browser, server, "anna@example.com")
    card = f"article.deal[data-deal='{deal_id}']"
    for page in (a, b):
        page.wait_for_selector(f".column[data-stage=qualified] {card}")
        assert "ACME GmbH" in page.inner_text(card) and "Sam Sales" in page.inner_text(card)
        assert "€12,000.00" in page.inner_text(".column[data-stage=qualified] .total")
    b.evaluate("window.boardMark = 'no reload'")
    a.drag_and_drop(card, ".column[data-stage=negotiation] .cards")
    a.wait_for_selector(f".column[data-stage=negotiation] {card}:not(.pending)", timeout=10_000)
    b.wait_for_selector(f".column[data-stage=negotiation] {card}", timeout=10_000)
    assert b.evaluate("window.boardMark") == "no reload"
    assert b.locator(f".column[data-stage=qualified] {card}").count() == 0
    assert "€12,000.00" in b.inner_text(".column[data-stage=negotiation] .total")
    assert b.inner_text(".column[data-stage=qualified] .count") == "0"

    def stage() -> str:
        db.session.expire_all()
        value = db.session.get(Deal, deal_id).stage
        db.session.commit()
        return value
    wait_until(lambda: stage() == "negotiation", timeout=5, message="the deal's stage saved")
    shot(a, "board-drag-a")
    shot(b, "board-live-b")


@pytest.mark.parametrize("backend", ["sqlite"])
def test_refused_move_rolls_back(backend, world, browser):
    from app.infra.models import PipelineStage
    from app.infra.state import db

    server, deal_id = world["server"], world["deal_id"]
    a = open_board(browser, server, "sam@example.com")
    # an admin defines the pipeline after the page loaded: "negotiation" is no stage any more
    db.session.add_all([PipelineStage(key=k, name=k.title(), position=n)
                        for n, k in enumerate(["qualified", "proposal", "won"])])
    db.session.commit()
    card = f"article.deal[data-deal='{deal_id}']"
    a.drag_and_drop(card, ".column[data-stage=negotiation] .cards")
    a.wait_for_selector("#toast:not([hidden])", timeout=10_000)
    assert "stage" in a.inner_text("#toast")
    a.wait_for_selector(f".column[data-stage=qualified] {card}:not(.pending)", timeout=10_000)
    shot(a, "board-rolled-back")


@pytest.fixture
def inbox_world(ctx, admin, telegram_api, start_server):
    from app.infra.models import Deal
    from app.infra.state import db

    _support, sales = h.channels(telegram_api)
    h.agent("sam@example.com", "Sam Sales", ["Sales"])
    h.agent("sue@example.com", "Sue Sales", ["Sales"])
    message = h.inbound(sales, 9191, "Can we get a quote for 50 seats?", first_name="Grace")
    deal = Deal(customer_id=message.customer_id, title="Grace 50 seats", stage="new",
                amount=Decimal("900.00"), currency="USD")
    db.session.add(deal)
    db.session.commit()
    h.reset_login_limit()
    release_db()
    return {"server": start_server(), "deal_id": deal.id}


@pytest.mark.parametrize("backend", ["sqlite"])
def test_inbox_card_edits_a_deal_inline_live(backend, inbox_world, browser):
    from app.infra.models import Deal
    from app.infra.state import db

    server, deal_id = inbox_world["server"], inbox_world["deal_id"]
    pages = []
    for email in ("sam@example.com", "sue@example.com"):
        context = browser.new_context(viewport={"width": 1440, "height": 860}, locale="en-US")
        page = context.new_page()
        page.goto(f"{server.url}/login")
        page.fill("input[name=email]", email)
        page.fill("input[name=password]", h.PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("body[data-live=yes]")
        page.click(".row:has-text('Grace')")
        page.wait_for_selector(f"#card-deals [data-deal='{deal_id}']")
        pages.append(page)
    a, b = pages
    line = f"#card-deals [data-deal='{deal_id}']"
    a.select_option(f"{line} select[data-field=stage]", "proposal")
    expect(b.locator(f"{line} select")).to_have_value("proposal", timeout=10_000)
    a.fill(f"{line} input[data-field=amount]", "1500")
    a.press(f"{line} input[data-field=amount]", "Tab")
    expect(b.locator(f"{line} input[data-field=amount]")).to_have_value(
        re.compile(r"^1500(\.0+)?$"), timeout=10_000)

    def saved():
        db.session.expire_all()
        row = db.session.get(Deal, deal_id)
        value = (row.stage, str(row.amount))
        db.session.commit()
        return value
    wait_until(lambda: saved() == ("proposal", "1500.00"), timeout=5, message="deal saved")
    shot(b, "inbox-card-deal-live")


@pytest.mark.parametrize("backend", ["sqlite"])
def test_board_links_keyboard_owner_filter_and_locale(backend, world, browser):
    """Issue 19: a card links to the customer's card and conversation; ← → move a focused
    card; an owner filter; every column on a 1440 px screen; amounts in the agent's language
    (ru: `9 150,50 €`); axe-core clean at desktop and phone width."""
    from decimal import Decimal

    from sqlalchemy import select

    from app.domain.channels import add_channel
    from app.infra.models import Agent, Deal, Message
    from app.infra.state import db
    from app.usecases.ingest import receive
    from tests.browser.screen import DESKTOP, PHONE, check_axe, check_screen

    site = add_channel("webchat", "Site chat", {"secret": "widget-secret-123"}, teams=["Support"])
    db.session.commit()
    receive(site, "w-1", {"visitor_id": "v" * 32, "message_id": "w-1", "text": "Сколько стоит доставка?",
                          "prechat": {"name": "Мария"}}, process="inline")
    message = db.session.scalar(select(Message).where(Message.text == "Сколько стоит доставка?"))
    anna = db.session.scalar(select(Agent).where(Agent.email == "anna@example.com"))
    anna.locale = "ru"
    deal = Deal(customer_id=message.customer_id, title="Мария: доставка", stage="new",
                amount=Decimal("9150.50"), currency="EUR", owner_id=anna.id)
    db.session.add(deal)
    db.session.commit()
    deal_id, conversation_id = deal.id, message.conversation_id
    release_db()
    server = world["server"]
    page = sign_in(browser, server, "anna@example.com")
    page.goto(f"{server.url}/board")
    page.wait_for_selector("body[data-live=yes]")
    card = f"article.deal[data-deal='{deal_id}']"
    page.wait_for_selector(f".column[data-stage=new] {card}")
    # amounts in the agent's language, every column inside the 1440 px window
    amount = page.inner_text(f"{card} .deal-amount").replace("\u00a0", " ").replace("\u202f", " ")
    assert amount == "9 150,50 €"
    body = page.inner_text("body")  # the board's own words in Russian
    for english in ("Owner", "All owners", "No owner", "Conversation", "Sign out"):
        assert english not in body, english
    rights = page.eval_on_selector_all(".column", "cs => cs.map(c => c.getBoundingClientRect().right)")
    assert len(rights) == 6 and max(rights) <= 1440, rights
    # links to the customer's card and the conversation
    assert page.get_attribute(f"{card} .deal-customer-link", "href") == f"/conversations/{conversation_id}#card"
    assert page.get_attribute(f"{card} .deal-conversation", "href") == f"/conversations/{conversation_id}"
    # the owner filter
    page.select_option("#owner-filter", label="Sam Sales")
    page.wait_for_selector(card, state="detached")
    assert page.locator("article.deal").count() == 1 and "ACME" in page.inner_text("article.deal")
    page.select_option("#owner-filter", value="")
    # the keyboard: → moves the focused card on, and it keeps the focus
    page.focus(card)
    page.keyboard.press("ArrowRight")
    page.wait_for_selector(f".column[data-stage=qualified] {card}:not(.pending)", timeout=10_000)
    assert page.evaluate("document.activeElement.dataset.deal") == str(deal_id)
    page.wait_for_selector("#toast[role=status]:has-text('Мария: доставка')")

    def stage() -> str:
        db.session.expire_all()
        value = db.session.get(Deal, deal_id).stage
        db.session.commit()
        return value
    wait_until(lambda: stage() == "qualified", timeout=5, message="the keyboard move saved")
    check_axe(page, "board at 1440 px")
    check_screen(page)
    page.set_viewport_size(PHONE)
    check_axe(page, "board at 390 px")
    page.set_viewport_size(DESKTOP)
    shot(page, "board-ru")
    # the customer link opens the card
    page.click(f"{card} .deal-customer-link")
    page.wait_for_selector("body[data-ready=yes] aside.card h3:text('Мария')")
