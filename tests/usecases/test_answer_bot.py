"""The answer bot through the app: a customer's Telegram question is answered from the
knowledge base with buttons (real PTB against the fake Bot API), "yes" resolves, "no", a low
score or asking for a person hand over to the team's queue with a note; automated messages
are never answered; after_hours follows the team's business hours; the bot report counts it."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from connectors.base import TELEGRAM, Handle, Inbound

from app.domain import kb
from app.infra.models import Channel, Conversation, Event, Message, Team
from app.infra.state import db
from app.usecases.ingest import apply_inbound, receive
from tests.conftest import run_jobs, telegram_update

CUSTOMER = 4242
CLOSED = {"timezone": "UTC", "days": {}}          # a schedule that never opens


@pytest.fixture
def articles(ctx):
    delivery = kb.create(db.session, {
        "title": "Сроки доставки по России", "language": "ru", "category": "Доставка",
        "keywords": ["срок", "Казань", "сколько дней"], "published": True,
        "short_answer": "В Казань доставляем за 2–5 рабочих дней.",
        "body": "По Москве доставка занимает 1–2 дня, в Казань — 2–5 рабочих дней."})
    returns = kb.create(db.session, {
        "title": "Zwrot towaru", "language": "pl", "published": True,
        "short_answer": "Masz 30 dni na zwrot.", "body": "Towar możesz zwrócić w ciągu 30 dni."})
    db.session.commit()
    return {"delivery": delivery.id, "returns": returns.id}


def bot_on(channel: Channel, setting: str = "always") -> None:
    fresh = db.session.get(Channel, channel.id)
    fresh.settings = {**fresh.settings, "answer_bot": setting}
    db.session.commit()


_n = iter(range(1, 10_000))


def customer_writes(app, channel, text: str) -> Conversation:
    n = next(_n)
    receive(channel, str(n), telegram_update(n, CUSTOMER, text), process="inline")
    run_jobs(app)      # the rules engine (and the bot) on the committed events; the outbox
    run_jobs(app)
    db.session.expire_all()
    return db.session.scalar(select(Conversation).order_by(Conversation.id.desc()))


def press(app, channel, telegram_api, button_id: str) -> Conversation:
    sent = telegram_api.calls("sendMessage")[-1]
    chat_id = int(sent.params["chat_id"])
    message = next(m for m in reversed([telegram_api.message(chat_id, i) for i in range(1, 50)])
                   if m and m.get("reply_markup"))
    update = {"update_id": next(_n) + 50_000, "callback_query": {
        "id": f"cbq-{button_id}", "from": {"id": CUSTOMER, "is_bot": False, "first_name": "Анна"},
        "message": message, "chat_instance": "1", "data": button_id}}
    receive(channel, str(update["update_id"]), update, process="inline")
    run_jobs(app)
    run_jobs(app)
    db.session.expire_all()
    return db.session.scalar(select(Conversation).order_by(Conversation.id.desc()))


def events(type_: str) -> list[dict]:
    db.session.expire_all()
    return [e.payload for e in db.session.scalars(select(Event).where(Event.type == type_)
                                                  .order_by(Event.id))]


def thread(conversation: Conversation) -> list[Message]:
    return list(db.session.scalars(select(Message).where(
        Message.conversation_id == conversation.id).order_by(Message.id)))


def test_bot_answers_with_buttons_and_no_hands_over_to_the_team_queue(
        app, api, telegram_channel, telegram_api, articles):
    bot_on(telegram_channel)
    conversation = customer_writes(app, telegram_channel, "Сколько идёт доставка в Казань?")
    assert conversation.handled_by == "answer_bot" and conversation.assignee_id is None
    (sent,) = telegram_api.calls("sendMessage")
    assert sent.params["text"].startswith("В Казань доставляем за 2–5 рабочих дней.")
    assert f"/help/ru/{articles['delivery']}" in sent.params["text"]
    assert [row[0] for row in sent.params["reply_markup"]["inline_keyboard"]] == [
        {"text": "Да, спасибо", "callback_data": f"kb:{articles['delivery']}:yes"},
        {"text": "Нет, нужен человек", "callback_data": f"kb:{articles['delivery']}:no"}]
    answer = thread(conversation)[-1]
    assert answer.meta["bot"] == "answer_bot" and answer.automated and answer.author_id is None
    assert events("bot.answered")[0]["article_id"] == articles["delivery"]
    # held by the bot: in the Bot view, not in the people's unassigned queue
    unassigned = api.get("/conversations", query_string={"assignee": "none"}).json["items"]
    assert conversation.id not in [c["id"] for c in unassigned]
    held = api.get("/conversations", query_string={"handled_by": "bot"}).json["items"]
    assert [c["id"] for c in held] == [conversation.id] and held[0]["handled_by"] == "answer_bot"
    assert api.get("/inbox/views").json["totals"]["bot"] == 1

    conversation = press(app, telegram_channel, telegram_api, f"kb:{articles['delivery']}:no")
    assert conversation.handled_by is None and conversation.status == "open"
    support = db.session.scalar(select(Team).where(Team.name == "Support"))
    assert conversation.team_id == support.id and conversation.waiting_since is not None
    texts = [(m.direction, m.text) for m in thread(conversation)]
    assert ("in", "Нет, нужен человек") in texts
    assert ("note", "Answer bot: handed to people — the customer said the answer did not "
                    "help.") in texts
    assert texts[-2:][0] == ("out", "Передаю ваш вопрос оператору — вам ответят здесь же.") \
        or ("out", "Передаю ваш вопрос оператору — вам ответят здесь же.") in texts
    assert events("bot.feedback") == [{"conversation_id": conversation.id,
                                       "channel_id": telegram_channel.id,
                                       "article_id": articles["delivery"], "helpful": False}]
    assert events("bot.handoff")[0]["reason"] == "not_helpful"
    unassigned = api.get("/conversations", query_string={"assignee": "none"}).json["items"]
    assert conversation.id in [c["id"] for c in unassigned]
    assert conversation.unread_count == 2      # the question and the press: new to the agents
    telegram_api.wait_for("answerCallbackQuery")
    # a person has it now: the bot stays out of the rest of the conversation
    before = len(telegram_api.calls("sendMessage"))
    customer_writes(app, telegram_channel, "Сколько идёт доставка в Москву?")
    assert len(telegram_api.calls("sendMessage")) == before


def test_yes_resolves_as_answered_by_the_bot_and_the_report_counts_it(
        app, api, telegram_channel, telegram_api, articles):
    bot_on(telegram_channel)
    customer_writes(app, telegram_channel, "Через сколько дней привезут заказ в Казань?")
    conversation = press(app, telegram_channel, telegram_api, f"kb:{articles['delivery']}:yes")
    assert conversation.status == "resolved" and conversation.handled_by == "answer_bot"
    assert conversation.assignee_id is None and conversation.waiting_since is None
    assert events("bot.resolved")[0]["conversation_id"] == conversation.id
    report = api.get("/reports/bot").json
    (row,) = [r for r in report["items"] if r["channel_id"] == telegram_channel.id]
    assert (row["answered"], row["bot_resolved"], row["handed_off"]) == (1, 1, 0)
    (article,) = report["articles"]
    assert (article["article_id"], article["sent"], article["helpful_yes"],
            article["helpful_no"]) == (articles["delivery"], 1, 1, 0)
    assert report["totals"]["helpful_yes"] == 1


@pytest.mark.parametrize("text, reason", [
    ("Позовите оператора, пожалуйста", "asked_for_person"),
    ("Chcę rozmawiać z konsultantem", "asked_for_person"),
    ("Какая погода завтра в Казани?", "low_score"),
])
def test_a_person_is_called_by_keyword_or_by_a_low_score(app, telegram_channel, telegram_api,
                                                         articles, text, reason):
    bot_on(telegram_channel)
    conversation = customer_writes(app, telegram_channel, text)
    assert conversation.handled_by is None and conversation.waiting_since is not None
    assert events("bot.answered") == []
    (handoff,) = events("bot.handoff")
    assert handoff["reason"] == reason and handoff["bot"] == "answer_bot"
    notes = [m.text for m in thread(conversation) if m.direction == "note"]
    assert len(notes) == 1 and notes[0].startswith("Answer bot: handed to people")


def test_an_automated_message_is_never_answered(app, telegram_channel, telegram_api, articles):
    bot_on(telegram_channel)
    customer_writes(app, telegram_channel, "Здравствуйте")        # a greeting: low score
    db.session.expire_all()
    assert events("bot.handoff")[0]["reason"] == "low_score"
    # a new conversation from an auto-reply: held, never answered
    resolved = db.session.scalar(select(Conversation))
    resolved.status, resolved.handled_by = "resolved", None
    db.session.commit()
    before = len(telegram_api.calls("sendMessage"))
    apply_inbound(db.session, db.session.get(Channel, telegram_channel.id), Inbound(
        external_id="auto-1", sender=Handle(TELEGRAM, str(CUSTOMER)),
        sent_at=datetime.now(timezone.utc), text="Сколько идёт доставка в Казань?",
        automated=True))
    db.session.commit()
    run_jobs(app)
    run_jobs(app)
    db.session.expire_all()
    assert len(telegram_api.calls("sendMessage")) == before
    assert events("bot.answered") == []


def test_after_hours_follows_the_teams_business_hours(app, telegram_channel, telegram_api,
                                                      articles):
    bot_on(telegram_channel, "after_hours")
    conversation = customer_writes(app, telegram_channel, "Сколько идёт доставка в Казань?")
    assert conversation.handled_by is None and telegram_api.calls("sendMessage") == []
    conversation.status = "resolved"
    for team in db.session.scalars(select(Team)):
        team.business_hours = CLOSED
    db.session.commit()
    conversation = customer_writes(app, telegram_channel, "Сколько идёт доставка в Казань?")
    assert conversation.handled_by == "answer_bot"
    assert len(telegram_api.calls("sendMessage")) == 1


def test_off_and_bad_settings(app, telegram_channel, telegram_api, articles, api):
    conversation = customer_writes(app, telegram_channel, "Сколько идёт доставка в Казань?")
    assert conversation.handled_by is None and telegram_api.calls("sendMessage") == []
    bad = api.patch(f"/channels/{telegram_channel.id}", json={"settings": {"answer_bot": "night"}})
    assert bad.status_code == 422
    good = api.patch(f"/channels/{telegram_channel.id}",
                     json={"settings": {"answer_bot": "after_hours"}})
    assert good.status_code == 200, good.json
    db.session.expire_all()
    assert db.session.get(Channel, telegram_channel.id).settings["answer_bot"] == "after_hours"


def test_a_disabled_channel_hands_the_bots_conversations_to_people(app, api, telegram_channel,
                                                                  telegram_api, articles):
    """The bot cannot answer on a disabled channel: its conversations go to people, with a
    note saying why and no message to the customer on the channel that is gone."""
    bot_on(telegram_channel)
    conversation = customer_writes(app, telegram_channel, "Сколько идёт доставка в Казань?")
    assert conversation.handled_by == "answer_bot"
    sent = len(telegram_api.calls("sendMessage"))
    assert api.delete(f"/channels/{telegram_channel.id}").status_code in (200, 204)
    run_jobs(app)
    db.session.expire_all()
    conversation = db.session.get(Conversation, conversation.id)
    assert conversation.handled_by is None and conversation.status == "open"
    assert ("note", "Answer bot: handed to people — its channel was disabled.") in [
        (m.direction, m.text) for m in thread(conversation)]
    assert events("bot.handoff")[-1]["reason"] == "channel_disabled"
    assert len(telegram_api.calls("sendMessage")) == sent
