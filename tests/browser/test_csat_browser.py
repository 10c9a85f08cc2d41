"""Feedback (CSAT) in headless Chromium: the email's one-click link (sent through aiosmtpd)
opens the public feedback page in the customer's language (Russian, Polish), records the
score, takes a comment and a changed score; the site chat's stars record the score without
opening a new conversation; the Reports page draws the CSAT block."""
from __future__ import annotations

import re
from email import message_from_bytes, policy

import pytest
from sqlalchemy import func, select

from connectors.base import Handle, Inbound

from app.infra.models import Channel, Conversation, CsatSurvey, Message, utcnow
from app.infra.state import db
from app.usecases import csat, ingest
from tests.browser.screen import check_axe, check_screen, wait_js
from tests.browser.test_widget_browser import open_widget, read, shot, sites, webchat_channel  # noqa: F401
from tests.conftest import login_session, run_jobs, wait_until
from tests.servers.smtp import RecordingSMTP

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def smtp_server():
    with RecordingSMTP() as server:
        yield server


def _enable() -> None:
    csat.update_settings(db.session, None, {"enabled": True, "throttle_days": 0})
    db.session.commit()


def _email_in(channel_id: int, address: str, n: int, text: str, subject: str) -> int:
    channel = db.session.get(Channel, channel_id)
    ingest.apply_records(db.session, channel, [Inbound(
        external_id=f"<m{n}@example.test>", sender=Handle("email", address), sent_at=utcnow(),
        text=text, subject=subject, sender_name=address.split("@")[0].title())])
    db.session.commit()
    found = db.session.scalar(select(Message.conversation_id).where(
        Message.external_id == f"<m{n}@example.test>"))
    db.session.commit()
    return found


def _link(mail_raw: bytes, score: int) -> str:
    mail = message_from_bytes(mail_raw, policy=policy.default)
    text = mail.get_body(preferencelist=("plain",)).get_content()
    html = mail.get_body(preferencelist=("html",)).get_content()
    links = re.findall(r"https?://\S+/feedback/[\w.\-]+\?score=\d", text)
    assert len(links) == 5, text
    assert all(link in html for link in links)   # the same five links in the HTML part
    link = next(link for link in links if link.endswith(f"score={score}"))
    return re.sub(r"^https?://[^/]+", "", link)


def _survey(conversation_id: int) -> CsatSurvey:
    db.session.expire_all()
    found = db.session.scalar(select(CsatSurvey).where(
        CsatSurvey.conversation_id == conversation_id))
    db.session.commit()
    return found


@pytest.mark.parametrize("backend", ["sqlite"])
def test_email_link_opens_the_feedback_page_in_russian_and_polish(
        backend, app, api, ctx, admin, smtp_server, start_server, browser):
    from app.domain.channels import add_channel

    channel = add_channel("email", "Support mailbox", {
        **smtp_server.settings(), "from_address": "support@shop.example.test",
        # mail in comes through the ingest door here (no IMAP poller runs in the tests)
        "imap_host": "127.0.0.1", "imap_port": 1, "imap_security": "none",
        "imap_user": "support", "imap_password": "unused-password",
        "from_name": "Shop Support"})
    db.session.commit()
    channel_id = channel.id
    _enable()
    cases = [("olga@example.ru", "Здравствуйте! Где мой заказ 1234? Спасибо", "Заказ 1234",
              "Спасибо! Ваша оценка: 4 из 5.", 4, "Курьер опоздал, но всё хорошо"),
             ("zofia@example.pl", "Dzień dobry, kiedy dostanę zwrot pieniędzy? Dziękuję",
              "Zwrot", "Dziękujemy! Twoja ocena: 2 z 5.", 2, "Za długo to trwało")]
    conversations = []
    for n, (address, text, subject, *_rest) in enumerate(cases):
        conversation_id = _email_in(channel_id, address, n, text, subject)
        answer = api.post(f"/conversations/{conversation_id}/messages", json={"text": "OK"})
        assert answer.status_code == 201, answer.json
        assert api.patch(f"/conversations/{conversation_id}",
                         json={"status": "resolved"}).status_code == 200
        run_jobs(app)
        run_jobs(app)
        conversations.append(conversation_id)
    mails = smtp_server.received
    assert len(mails) == 4   # two answers, two questions
    server = start_server()
    page = browser.new_context(viewport={"width": 1200, "height": 800}).new_page()
    page.set_default_timeout(10000)
    for (address, _text, _subject, thanks, score, comment), conversation_id, mail in zip(
            cases, conversations, (mails[1], mails[3])):
        assert address in mail.rcpt_tos
        page.goto(server.url + _link(mail.raw, score))   # one click in the email
        assert page.locator("#fb-thanks").inner_text() == thanks
        assert _survey(conversation_id).score == score
        assert page.locator(".star.on").count() == score
        check_screen(page)
        check_axe(page, f"feedback page {address}")
        shot(page, f"csat-feedback-{address.split('@')[1]}.png")
        page.fill("#fb-comment", comment)
        page.click(".comment button[type=submit]")
        page.locator("#fb-saved").wait_for()
        survey = _survey(conversation_id)
        assert survey.comment == comment and survey.answered_via == "link"
        # a changed mind: another star on the same page
        page.click(".star[data-score='5']")
        page.locator(".star.on").nth(4).wait_for()
        assert _survey(conversation_id).score == 5
        assert page.locator("#fb-comment").input_value() == comment
        body = page.inner_text("body")
        assert not re.search(r"\b(How did we do|Thank you|rating|comment)\b", body), body
    # neither answer opened a conversation; the thread says what the customer answered
    assert read(lambda: db.session.scalar(select(func.count()).select_from(Conversation))) == 2
    assert read(lambda: db.session.get(Conversation, conversations[0]).status) == "resolved"
    # a forged or broken token: a plain page, nothing recorded
    page.goto(server.url + "/feedback/not-a-token?score=1")
    assert page.locator("#fb-problem").is_visible()
    assert "Traceback" not in server.log()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_site_chat_stars_record_the_score(backend, ctx, admin, start_server, sites, browser):
    site = sites()
    public_id = read(lambda: webchat_channel(site.origin).public_id)
    _enable()
    server = start_server()
    url = site.page("index.html", server.url, public_id, lang="pl")
    agent = login_session(server.url, "admin@example.com", "correct horse battery")
    page = browser.new_context(viewport={"width": 1100, "height": 800}).new_page()
    page.goto(url)
    frame = open_widget(page)
    frame.locator("#tl-input").fill("Dzień dobry, czy macie kawę bezkofeinową?")
    frame.locator("#tl-input").press("Enter")
    wait_until(lambda: frame.locator(".tl-msg.tl-in[data-status=received]").count() == 1,
               timeout=10, message="delivery status")
    conversation_id = read(lambda: db.session.scalar(select(Conversation.id)))
    reply = agent.post(f"{server.url}/api/v1/conversations/{conversation_id}/messages",
                       json={"text": "Tak, mamy! Zapraszamy."})
    assert reply.status_code == 201, reply.text
    frame.get_by_text("Tak, mamy! Zapraszamy.").wait_for()
    resolved = agent.patch(f"{server.url}/api/v1/conversations/{conversation_id}",
                           json={"status": "resolved"})
    assert resolved.status_code == 200, resolved.text
    stars = frame.locator(".tl-stars .tl-star")
    stars.first.wait_for(timeout=15000)
    assert stars.count() == 5
    assert "Oceń" in frame.locator(".tl-msg.tl-out").last.inner_text()
    assert stars.nth(3).get_attribute("aria-label") == "4 z 5"
    shot(page, "csat-widget-stars.png")
    stars.nth(3).click()
    wait_until(lambda: (_survey(conversation_id) or CsatSurvey()).score == 4, timeout=10,
               message="the widget's score recorded")
    assert frame.locator(".tl-star.tl-on").count() == 4
    frame.locator(".tl-msg.tl-in[data-status=received]", has_text="★ 4").wait_for()
    frame.get_by_text("Dziękujemy za ocenę! Jeśli chcesz").wait_for(timeout=10000)
    # no new conversation: the answer joined the resolved one
    assert read(lambda: db.session.scalar(select(func.count()).select_from(Conversation))) == 1
    assert read(lambda: db.session.get(Conversation, conversation_id).status) == "resolved"
    answer = agent.get(f"{server.url}/api/v1/conversations/{conversation_id}/csat").json()
    assert answer["survey"]["score"] == 4
    activity = agent.get(f"{server.url}/api/v1/conversations/{conversation_id}/activity").json()
    assert "Customer rated 4/5" in [a["text"] for a in activity["items"]]
    shot(page, "csat-widget-rated.png")
    assert "Traceback" not in server.log()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_reports_page_shows_the_csat_block(backend, ctx, admin, telegram_api, start_server,
                                           browser):
    from tests import inbox_helpers as h

    support, _sales = h.channels(telegram_api)
    now = utcnow()
    for n, score in enumerate([5, 4, 4, None]):
        message = h.inbound(support, 7700 + n, f"Pytanie {n}")
        db.session.add(CsatSurvey(conversation_id=message.conversation_id,
                                  customer_id=message.customer_id, channel_id=support.id,
                                  agent_id=admin.id, language="pl", asked_at=now, score=score,
                                  answered_at=now if score else None))
    db.session.commit()
    h.reset_login_limit()
    server = start_server()
    context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="pl-PL")
    page = context.new_page()
    page.set_default_timeout(10000)
    page.goto(f"{server.url}/login")
    page.fill("input[name=email]", "admin@example.com")
    page.fill("input[name=password]", "correct horse battery")
    page.click("button[type=submit]")
    page.wait_for_url(lambda u: "/login" not in u)
    page.goto(f"{server.url}/reports")
    wait_js(page, "document.body.dataset.reports === 'ready'")
    page.locator("#r-csat").scroll_into_view_if_needed()
    shot(page, "csat-reports.png")
    totals = page.locator("#csat-totals")
    assert totals.locator("[data-figure=average] b").inner_text() == "4,33"
    assert totals.locator("[data-figure=asked] b").inner_text() == "4"
    assert totals.locator("[data-figure=response_rate] b").inner_text() == "75%"
    assert page.locator("#chart-csat canvas").count() == 1
    assert page.locator("#table-csat table").count() == 1
    # the table fits beside the chart: its last column is on screen
    assert page.locator("#table-csat thead th").last.evaluate(
        "th => th.getBoundingClientRect().right <= th.closest('.table-wrap').getBoundingClientRect().right + 1")
    assert "Admin" in page.locator("#table-csat").inner_text() or \
        "Админ" in page.locator("#table-csat").inner_text()
    check_screen(page)
