"""Feedback after a conversation (CSAT, issue 21): the question goes out once when an agent
resolves a conversation (the rules engine reacting to the committed event), through the real
outbox to the local Telegram and Graph API fakes; the customer's answer (a digit reply, a
button, the echoed button title) is recorded on the resolved conversation without opening a
new one; a following text becomes the comment; the throttle; never after a bot alone or an
automated exchange. SQLite with in-process jobs and PostgreSQL + Redis with rq workers."""
from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from connectors.base import Handle, Inbound

from app.infra.models import (
    Channel,
    Conversation,
    ConversationActivity,
    CsatSurvey,
    CsatThrottle,
    Message,
    utcnow,
)
from app.infra.state import db
from app.usecases import ingest
from tests.conftest import run_jobs, telegram_update
from tests.fakes.graph_api import FakeGraphAPI, sign

FIXTURES = Path(__file__).parents[1] / "fixtures" / "whatsapp"
_ids = iter(range(50000, 99999))


def enable(api, **extra) -> None:
    response = api.patch("/settings/csat", json={"enabled": True, **extra})
    assert response.status_code == 200, response.json
    assert response.json["enabled"] is True


@pytest.fixture
def tg(telegram_channel) -> int:
    return telegram_channel.id


def tg_in(channel_id: int, user_id: int, text: str, first_name: str = "Анна") -> None:
    n = next(_ids)
    ingest.receive(db.session.get(Channel, channel_id), str(n),
                   telegram_update(n, user_id, text, first_name=first_name), process="inline")
    db.session.commit()


def conversations(customer_id: int | None = None) -> list[Conversation]:
    db.session.expire_all()
    stmt = select(Conversation).order_by(Conversation.id)
    if customer_id is not None:
        stmt = stmt.where(Conversation.customer_id == customer_id)
    found = list(db.session.scalars(stmt))
    db.session.commit()
    return found


def survey_of(conversation_id: int) -> CsatSurvey | None:
    db.session.expire_all()
    found = db.session.scalar(select(CsatSurvey).where(
        CsatSurvey.conversation_id == conversation_id))
    db.session.commit()
    return found


def activity_texts(conversation_id: int) -> list[str]:
    db.session.expire_all()
    found = list(db.session.scalars(select(ConversationActivity.text).where(
        ConversationActivity.conversation_id == conversation_id)
        .order_by(ConversationActivity.id)))
    db.session.commit()
    return found


def answer_and_resolve(app, api, conversation_id: int, text: str = "Заказ уже в пути!") -> None:
    response = api.post(f"/conversations/{conversation_id}/messages", json={"text": text})
    assert response.status_code == 201, response.json
    run_jobs(app)
    response = api.patch(f"/conversations/{conversation_id}", json={"status": "resolved"})
    assert response.status_code == 200, response.json
    run_jobs(app)
    run_jobs(app)   # the question's send was queued by the rules engine's job


def tg_texts(telegram_api) -> list[str]:
    return [r.params["text"] for r in telegram_api.calls("sendMessage")]


def test_telegram_round_trip_digit_reply_then_comment(app, api, tg, telegram_api):
    enable(api)
    tg_in(tg, 4242, "Где мой заказ? Номер 1234")
    conversation = conversations()[0]
    answer_and_resolve(app, api, conversation.id)
    sent = telegram_api.calls("sendMessage")
    assert [r.params["text"] for r in sent][0] == "Заказ уже в пути!"
    assert len(sent) == 2, tg_texts(telegram_api)
    question = sent[1]
    assert "Оцените" in question.params["text"] and "от 1" in question.params["text"]
    markup = question.params.get("reply_markup")
    if markup:   # the connector's inline keyboard, once merged: the csat button ids
        data = json.dumps(markup, ensure_ascii=False)
        assert f"csat:{conversation.id}:5" in data and f"csat:{conversation.id}:1" in data
    survey = survey_of(conversation.id)
    assert survey is not None and survey.score is None and survey.language == "ru"
    db.session.expire_all()
    stored = db.session.get(Message, survey.message_id)
    assert stored.automated and [b["id"] for b in stored.meta["buttons"]] == [
        f"csat:{conversation.id}:{n}" for n in range(1, 6)]
    db.session.commit()
    assert "feedback question sent to the customer (telegram)" in activity_texts(conversation.id)

    # the customer answers with a digit: recorded, the conversation stays resolved, no new one
    tg_in(tg, 4242, "4")
    run_jobs(app)
    found = conversations()
    assert len(found) == 1 and found[0].status == "resolved" and found[0].unread_count == 0
    survey = survey_of(conversation.id)
    assert survey.score == 4 and survey.answered_via == "reply" and survey.comment is None
    assert "Customer rated 4/5" in activity_texts(conversation.id)
    texts = tg_texts(telegram_api)
    assert len(texts) == 3 and "Спасибо за оценку" in texts[2]   # thanks, a comment offered
    # a free text shortly after is the comment, in the same conversation
    tg_in(tg, 4242, "Курьер опоздал на час")
    run_jobs(app)
    found = conversations()
    assert len(found) == 1 and found[0].status == "resolved"
    survey = survey_of(conversation.id)
    assert survey.score == 4 and survey.comment == "Курьер опоздал на час"
    assert "Customer rated 4/5: Курьер опоздал на час" in activity_texts(conversation.id)
    body = api.get(f"/conversations/{conversation.id}/csat").json
    assert body["asked"] is True and body["survey"]["score"] == 4
    card = api.get(f"/conversations/{conversation.id}/timeline").json["card"]["csat"]
    assert card["average"] == 4.0 and card["answered"] == 1
    assert card["items"][0]["comment"] == "Курьер опоздал на час"
    assert body["survey"]["comment"] == "Курьер опоздал на час"
    # no rule ran on the answers (no SLA clock, no distribution), nothing more was sent
    assert len(tg_texts(telegram_api)) == 3
    # a later message is a new request: a new open conversation, no question to it
    tg_in(tg, 4242, "И ещё вопрос про доставку")
    found = conversations()
    assert len(found) == 2 and found[1].status == "open"


def test_a_digit_with_a_comment_and_a_button_press(app, api, tg, telegram_api):
    enable(api)
    tg_in(tg, 5151, "Здравствуйте, не работает оплата")
    first = conversations()[0]
    answer_and_resolve(app, api, first.id, "Исправили, попробуйте ещё раз")
    tg_in(tg, 5151, "5 — всё отлично")
    survey = survey_of(first.id)
    assert survey.score == 5 and survey.comment == "всё отлично"
    assert "Customer rated 5/5: всё отлично" in activity_texts(first.id)
    # the button press (Inbound.button_id, as the connectors deliver it) changes the score
    channel = db.session.get(Channel, tg)
    ingest.apply_records(db.session, channel, [Inbound(
        external_id="5151:cb1", sender=Handle("telegram", "5151"), sent_at=utcnow(),
        text="⭐ 3", button_id=f"csat:{first.id}:3")])
    db.session.commit()
    assert survey_of(first.id).score == 3 and survey_of(first.id).answered_via == "button"
    assert len(conversations()) == 1


def test_the_throttle_and_the_setting(app, api, tg, telegram_api):
    enable(api, throttle_days=30)
    tg_in(tg, 6161, "Вопрос первый")
    first = conversations()[0]
    answer_and_resolve(app, api, first.id)
    assert survey_of(first.id) is not None
    tg_in(tg, 6161, "Вопрос второй, уже другой")
    second = conversations()[1]
    assert second.id != first.id
    answer_and_resolve(app, api, second.id)
    assert survey_of(second.id) is None   # asked 0 days ago: not again within 30 days
    assert sum("Оцените" in t for t in tg_texts(telegram_api)) == 1
    # the period over (the throttle moved back 31 days): the third one is asked
    db.session.get(CsatThrottle, first.customer_id).last_asked_at = utcnow() - timedelta(days=31)
    db.session.commit()
    tg_in(tg, 6161, "Третий вопрос про возврат")
    third = conversations()[2]
    answer_and_resolve(app, api, third.id)
    assert survey_of(third.id) is not None
    assert sum("Оцените" in t for t in tg_texts(telegram_api)) == 2
    # switched off: nobody is asked
    assert api.patch("/settings/csat", json={"enabled": False, "throttle_days": 0}).json[
        "enabled"] is False
    tg_in(tg, 7171, "Другой клиент")
    other = conversations()[3]
    answer_and_resolve(app, api, other.id)
    assert survey_of(other.id) is None


def test_not_asked_after_a_bot_alone_or_an_automated_exchange(app, api, tg, telegram_api):
    enable(api, throttle_days=0)
    # nobody answered (a bot or nobody): resolved without an agent's reply
    tg_in(tg, 8181, "Спасибо, разобрался сам")
    alone = conversations()[0]
    assert api.patch(f"/conversations/{alone.id}", json={"status": "resolved"}).status_code == 200
    run_jobs(app)
    assert survey_of(alone.id) is None
    # a conversation held by the answer bot (handled_by), even with an agent's reply
    tg_in(tg, 8282, "Как вернуть товар?")
    held = conversations()[1]
    db.session.get(Conversation, held.id).handled_by = "answer_bot"
    db.session.commit()
    answer_and_resolve(app, api, held.id)
    assert survey_of(held.id) is None
    # the last exchange automated (an auto-reply after the agent's answer)
    tg_in(tg, 8383, "Где мой заказ?")
    auto = conversations()[2]
    api.post(f"/conversations/{auto.id}/messages", json={"text": "Отправили вчера"})
    from app.usecases.outbox import enqueue_reply

    enqueue_reply(db.session, db.session.get(Conversation, auto.id), None,
                  "Мы ответим в рабочее время", automated=True)
    db.session.commit()
    run_jobs(app)
    api.patch(f"/conversations/{auto.id}", json={"status": "resolved"})
    run_jobs(app)
    run_jobs(app)
    assert survey_of(auto.id) is None
    # a bot logged that it resolved the conversation (the event `bot.resolved`)
    tg_in(tg, 8484, "Можно оплатить картой?")
    botted = conversations()[3]
    api.post(f"/conversations/{botted.id}/messages", json={"text": "Да, можно"})
    from app.infra.events import record_event

    record_event(db.session, "bot.resolved", {"conversation_id": botted.id}, None)
    db.session.commit()
    answer_and_resolve(app, api, botted.id, "Оплата картой доступна")
    assert survey_of(botted.id) is None
    assert not any("Оцените" in t for t in tg_texts(telegram_api))
    # the same with an agent alone is asked (the checks above are what held it back)
    tg_in(tg, 8585, "Как отменить заказ?")
    person = conversations()[4]
    answer_and_resolve(app, api, person.id, "Отменили, деньги вернутся")
    assert survey_of(person.id) is not None


# --- WhatsApp through the Graph API fake --------------------------------------------------

APP_SECRET = "wa-app-secret-value"
NUMBER_ID = "1122334455667"


@pytest.fixture
def graph():
    with FakeGraphAPI(phone_number_id=NUMBER_ID) as fake:
        yield fake


@pytest.fixture
def wa_channel(ctx, graph):
    from app.domain.channels import add_channel

    channel = add_channel("whatsapp", "WhatsApp PL", {
        "phone_number_id": NUMBER_ID, "access_token": "test-access-token",
        "app_secret": APP_SECRET, "verify_token": "verify-me-please",
        "api_base_url": graph.base_url})
    db.session.commit()
    return channel


def wa_post(app, channel, payload: dict) -> None:
    body = json.dumps(payload).encode()
    response = app.test_client().post(
        f"/webhooks/whatsapp/{channel}", data=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, APP_SECRET)})
    assert response.status_code == 200
    run_jobs(app)


def wa_text(wamid: str, text: str, wa_id: str = "48601234567") -> dict:
    payload = json.loads((FIXTURES / "pywa_message__text.json").read_text())
    value = payload["entry"][0]["changes"][0]["value"]
    value["metadata"]["phone_number_id"] = NUMBER_ID
    value["contacts"] = [{"profile": {"name": "Zofia"}, "wa_id": wa_id}]
    message = value["messages"][0]
    message.update({"from": wa_id, "id": wamid, "timestamp": str(int(time.time())),
                    "type": "text", "text": {"body": text}})
    message.pop("context", None)
    return payload


def wa_button(wamid: str, title: str, button_id: str, wa_id: str = "48601234567") -> dict:
    payload = wa_text(wamid, "", wa_id)
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message.pop("text", None)
    message.update({"type": "interactive", "interactive": {
        "type": "button_reply", "button_reply": {"id": button_id, "title": title}}})
    return payload


def test_whatsapp_round_trip_in_polish(app, api, wa_channel, graph):
    wa_channel = wa_channel.id
    enable(api)
    wa_post(app, wa_channel, wa_text("wamid.CSAT1", "Dzień dobry, gdzie jest moja przesyłka?"))
    conversation = conversations()[0]
    answer_and_resolve(app, api, conversation.id, "Paczka jest już w drodze")
    sent = graph.sent()
    assert len(sent) == 2, sent
    question = sent[1]
    text = json.dumps(question, ensure_ascii=False)
    assert "Oceń" in text and "od 1" in text   # Polish: the customer wrote in Polish
    if question.get("type") == "interactive":    # the connector's reply buttons, once merged
        assert f"csat:{conversation.id}:" in text
    # the customer presses a button: its title comes back (and its id, once the connector
    # reads it); either way the score is recorded on the resolved conversation
    wa_post(app, wa_channel, wa_button("wamid.CSAT2", "⭐ 5", f"csat:{conversation.id}:5"))
    found = conversations()
    assert len(found) == 1 and found[0].status == "resolved"
    survey = survey_of(conversation.id)
    assert survey.score == 5 and survey.language == "pl"
    assert "Customer rated 5/5" in activity_texts(conversation.id)
    assert "Dziękujemy za ocenę" in json.dumps(graph.sent()[-1], ensure_ascii=False)
    wa_post(app, wa_channel, wa_text("wamid.CSAT3", "Kurier był bardzo miły"))
    assert survey_of(conversation.id).comment == "Kurier był bardzo miły"
    assert len(conversations()) == 1
    assert db.session.scalar(select(func.count()).select_from(CsatSurvey)) == 1


def test_not_asked_when_the_customer_cannot_be_reached(app, api, tg, telegram_api):
    """A blocked bot (the identity marked unreachable) or an opted-out customer: no question."""
    from app.infra.models import Customer, Identity

    enable(api, throttle_days=0)
    tg_in(tg, 9191, "Где посылка?")
    blocked = conversations()[0]
    db.session.scalar(select(Identity).where(Identity.value == "9191")).reachable = False
    db.session.commit()
    answer_and_resolve(app, api, blocked.id, "В пути")
    assert survey_of(blocked.id) is None
    tg_in(tg, 9292, "Где посылка номер два?")
    opted = conversations()[1]
    db.session.get(Customer, opted.customer_id).tags = ["opted-out"]
    db.session.commit()
    answer_and_resolve(app, api, opted.id, "Тоже в пути")
    assert survey_of(opted.id) is None
    assert not any("Оцените" in t for t in tg_texts(telegram_api))
