"""The Reports page in Russian: charts with their tables, only the agent's own channels, no
stray null/undefined, no untranslated labels, no horizontal overflow at 1440 and 390 px."""
from __future__ import annotations

from datetime import timedelta

import pytest

from app.infra.models import Agent, CannedReply, Conversation, Customer, Message, utcnow
from app.infra.state import db
from tests.browser.screen import wait_js
from tests.conftest import release_db
from tests.inbox_helpers import PASSWORD, shot
from tests.browser.conftest import browser, world  # noqa: F401

ENGLISH = ("Messages per day", "Response times", "Customers", "First response", "Busiest hours",
           "Canned replies", "Sources and revenue", "Last 30 days")


def _data(world) -> None:
    """Two days of conversations on both bots; Anna answers on Support with a canned reply."""
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    anna = db.session.query(Agent).filter_by(email="anna@example.com").one()
    anna.locale = "ru"
    canned = CannedReply(shortcut="доставка", title="Доставка", text="Доставим завтра")
    db.session.add(canned)
    for n, channel in enumerate([world["support"], world["support"], world["sales"]]):
        customer = Customer(name=f"Клиент {n}", source={"channel": "telegram", "utm_source": "yandex",
                                                         "utm_campaign": "зима"})
        db.session.add(customer)
        db.session.flush()
        start = now - timedelta(days=n, hours=3)
        conversation = Conversation(customer_id=customer.id, channel_id=channel.id, created_at=start)
        db.session.add(conversation)
        db.session.flush()
        for minutes, direction in ((0, "in"), (7, "out"), (30, "in"), (45, "out")):
            db.session.add(Message(
                conversation_id=conversation.id, customer_id=customer.id, channel_id=channel.id,
                direction=direction, text="…", created_at=start + timedelta(minutes=minutes),
                author_id=anna.id if direction == "out" else None, status="sent",
                canned_reply_id=canned.id if direction == "out" and minutes == 7 else None))
    db.session.commit()
    from app.usecases import reports

    reports.rollup()
    release_db()


def _check_page(page, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    # the charts follow the page's width
    wait_js(page, "[...document.querySelectorAll('.chart')].every((box) => "
                           "box.querySelector('.uplot').offsetWidth <= box.clientWidth)")
    text = page.inner_text("main")
    for stray in ("null", "undefined", "NaN", "[object"):
        assert stray not in text, (stray, width)
    for english in ENGLISH:
        assert english not in text, (english, width)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, (width, overflow)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_reports_page_in_russian(backend, world, browser):  # noqa: F811
    _data(world)
    server = world["server"]
    context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="ru-RU")
    page = context.new_page()
    page.goto(f"{server.url}/login")
    page.fill("input[name=email]", "anna@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("body[data-ready=yes]")
    page.click("a[href='/reports']")
    page.wait_for_selector("body[data-reports=ready]")
    assert page.locator("#report-error").is_hidden(), page.locator("#report-error").text_content()
    # a chart (uPlot draws on a canvas) and its numbers in a table beside it
    assert page.locator("#chart-daily canvas").count() >= 1
    daily = page.locator("#table-daily table")
    assert daily.locator("caption").text_content() == "Сообщения по дням"
    assert daily.locator("tbody tr").count() == 30
    channels = page.locator("#table-channels table tbody").inner_text()
    assert "Support bot" in channels and "Sales bot" not in channels   # Anna's team only
    totals = page.locator("#table-channels table tfoot").inner_text()
    assert "Итого" in totals and "4" in totals
    assert page.locator("#chart-speed canvas").count() >= 1
    speed = page.locator("#table-speed table tbody").inner_text()
    assert "7 мин" in speed   # a 7-minute first response, in minutes
    canned = page.locator("#table-canned").inner_text()
    assert "/доставка" in canned
    assert "зима" in page.locator("#table-sources").inner_text()
    _check_page(page, 1440)
    shot(page, "reports-ru-1440")
    _check_page(page, 390)
    shot(page, "reports-ru-390")
    # the CSV link carries the same filters
    href = page.get_attribute("a.csv[data-report=volume]", "href")
    assert "format=csv" in href and "from=" in href
    csv_text = page.evaluate("(u) => fetch(u).then((r) => r.text())", href)
    assert csv_text.startswith("channel_id,") and "Support bot" in csv_text
    # business hours: the speed block says which clock it shows (no team schedule here, so
    # always open: the same 7 minutes), and the CSV link carries the choice
    assert "Календарное время" in page.locator("#speed-clock").inner_text()
    page.select_option("select[name=hours]", "business")
    page.click("#report-filters button[type=submit]")
    page.wait_for_selector("body[data-reports=ready]")
    assert page.locator("#report-error").is_hidden(), page.locator("#report-error").text_content()
    assert "Рабочее время" in page.locator("#speed-clock").inner_text()
    assert "7 мин" in page.locator("#table-speed table tbody").inner_text()
    assert "hours=business" in page.get_attribute("a.csv[data-report=response-times]", "href")
    _check_page(page, 1440)
    _check_page(page, 390)
    shot(page, "reports-ru-business-390")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_reports_label_filter_and_sla_blocks(backend, world, browser):  # noqa: F811
    """The label select narrows every block; the SLA block shows met/breached per channel,
    team and agent with its chart; nothing stray or overflowing at desktop and phone width."""
    from sqlalchemy import select

    from app.infra.models import SlaPolicy
    from tests.browser.screen import check_screen

    _data(world)
    policy = SlaPolicy(name="Стандарт", first_response_minutes=5)
    db.session.add(policy)
    db.session.flush()
    anna = db.session.query(Agent).filter_by(email="anna@example.com").one()
    support = world["support"]
    team = support.teams[0]
    team_name = team.name   # read now: touching an expired object later would hold SQLite's lock
    conversations = list(db.session.scalars(select(Conversation).where(
        Conversation.channel_id == support.id).order_by(Conversation.id)))
    for n, conversation in enumerate(conversations):
        start = conversation.created_at
        conversation.team_id, conversation.assignee_id = team.id, anna.id
        conversation.sla_policy_id = policy.id
        conversation.first_response_at = start + timedelta(minutes=7)
        # the first is answered after its 5 minutes (breached), the second within 10 (met)
        conversation.first_response_due_at = start + timedelta(minutes=5 if n == 0 else 10)
    conversations[0].labels = ["срочно"]
    db.session.commit()
    from app.usecases import reports

    reports.rollup()
    release_db()
    server = world["server"]
    context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="ru-RU")
    page = context.new_page()
    page.goto(f"{server.url}/login")
    page.fill("input[name=email]", "anna@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("body[data-ready=yes]")
    page.goto(f"{server.url}/reports")
    page.wait_for_selector("body[data-reports=ready]")
    assert page.locator("#h-sla").text_content() == "SLA"
    assert page.locator("#chart-sla canvas").count() >= 1
    sla = page.locator("#table-sla table")
    assert sla.locator("caption").text_content() == "SLA по каналам"
    row = sla.locator("tbody tr").first.inner_text()
    assert "Support bot" in row and "50%" in row
    assert "Выполнено в срок" in page.locator("#sla-totals").inner_text()
    teams = page.locator("#table-sla-teams").inner_text()
    assert team_name in teams
    assert "Anna Agent" in page.locator("#table-sla-agents").inner_text()
    check_screen(page)
    # the label select: only the labelled conversation's figures
    options = page.locator("select[name=label] option").all_inner_texts()
    assert options[1:] == ["срочно"]
    page.select_option("select[name=label]", "срочно")
    page.click("#report-filters button[type=submit]")
    page.wait_for_selector("body[data-reports=ready]")
    assert page.locator("#report-error").is_hidden()
    totals = page.locator("#table-channels table tfoot").inner_text().split()
    assert totals[:4] == ["Итого", "2", "2", "1"]   # in, out, conversations of that one
    row = page.locator("#table-sla table tbody tr").first.inner_text()
    assert "0%" in row and "50%" not in row           # its one target was breached
    href = page.get_attribute("a.csv[data-table=sla_by_team]", "href")
    assert "label=" in href and "table=sla_by_team" in href
    csv_text = page.evaluate("(u) => fetch(u).then((r) => r.text())", href)
    assert csv_text.startswith("team_id,name,first_response_met,first_response_breached")
    check_screen(page)
    shot(page, "reports-ru-label-sla")
    context.close()
