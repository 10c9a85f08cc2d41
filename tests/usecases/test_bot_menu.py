"""The answer bot's menu (issue 18): a new conversation's first message gets the channel's
greeting with "menu:<n>" buttons (an inline keyboard at the fake Bot API, sent through the
outbox); each kind of item does its action when pressed; bad menus are refused with 422
naming the field."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.infra.models import Channel, Team
from app.infra.state import db
from tests.usecases.test_answer_bot import (  # noqa: F401  (the fixture is used by name)
    articles,
    bot_on,
    customer_writes,
    events,
    press,
    thread,
)


def with_menu(channel: Channel, articles: dict, team_id: int | None = None) -> None:
    bot_on(channel)
    fresh = db.session.get(Channel, channel.id)
    handoff = {"title": "Оператор", "action": "handoff"}
    if team_id is not None:
        handoff["team_id"] = team_id
    fresh.settings = {**fresh.settings, "bot_menu": {
        "greeting": "Здравствуйте! Чем помочь?",
        "items": [{"title": "Доставка", "action": "article", "article_id": articles["delivery"]},
                  {"title": "Возврат", "action": "text", "text": "Вернуть товар можно за 30 дней."},
                  handoff]}}
    db.session.commit()


def test_a_new_conversation_gets_the_menu_as_an_inline_keyboard(
        app, telegram_channel, telegram_api, articles):
    with_menu(telegram_channel, articles)
    conversation = customer_writes(app, telegram_channel, "Здравствуйте")
    assert conversation.handled_by == "answer_bot"
    (sent,) = telegram_api.calls("sendMessage")
    assert sent.params["text"] == "Здравствуйте! Чем помочь?"
    assert [b for row in sent.params["reply_markup"]["inline_keyboard"] for b in row] == [
        {"text": "Доставка", "callback_data": "menu:1"},
        {"text": "Возврат", "callback_data": "menu:2"},
        {"text": "Оператор", "callback_data": "menu:3"}]
    menu = thread(conversation)[-1]
    assert menu.status == "sent" and menu.meta["bot_menu"] and menu.automated
    assert events("bot.handoff") == []          # the menu instead of a low-score hand-off
    # the menu is offered once: a second vague message is a low score, handed to people
    conversation = customer_writes(app, telegram_channel, "ну")
    assert len(telegram_api.calls("sendMessage")) == 2 and conversation.handled_by is None
    assert events("bot.handoff")[0]["reason"] == "low_score"


def test_a_clear_first_question_is_answered_without_the_menu(
        app, telegram_channel, telegram_api, articles):
    with_menu(telegram_channel, articles)
    customer_writes(app, telegram_channel, "Сколько идёт доставка в Казань?")
    (sent,) = telegram_api.calls("sendMessage")
    assert sent.params["text"].startswith("В Казань доставляем")
    assert sent.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == \
        f"kb:{articles['delivery']}:yes"


def test_the_article_item_answers_with_the_article_and_asks_if_it_helped(
        app, telegram_channel, telegram_api, articles):
    with_menu(telegram_channel, articles)
    customer_writes(app, telegram_channel, "Добрый день")
    conversation = press(app, telegram_channel, telegram_api, "menu:1")
    answer = telegram_api.calls("sendMessage")[-1]
    assert answer.params["text"].startswith("В Казань доставляем за 2–5 рабочих дней.")
    assert [row[0]["callback_data"] for row in answer.params["reply_markup"]["inline_keyboard"]] \
        == [f"kb:{articles['delivery']}:yes", f"kb:{articles['delivery']}:no"]
    assert conversation.handled_by == "answer_bot"
    assert events("bot.answered")[0]["article_id"] == articles["delivery"]
    conversation = press(app, telegram_channel, telegram_api, f"kb:{articles['delivery']}:yes")
    assert conversation.status == "resolved"


def test_the_text_item_sends_its_text(app, telegram_channel, telegram_api, articles):
    with_menu(telegram_channel, articles)
    customer_writes(app, telegram_channel, "Добрый день")
    conversation = press(app, telegram_channel, telegram_api, "menu:2")
    assert telegram_api.calls("sendMessage")[-1].params["text"] == \
        "Вернуть товар можно за 30 дней."
    assert conversation.handled_by == "answer_bot" and events("bot.handoff") == []
    assert ("in", "Возврат") in [(m.direction, m.text) for m in thread(conversation)]


def test_the_handoff_item_goes_to_people_of_its_team_with_a_note(
        app, telegram_channel, telegram_api, articles):
    sales = db.session.scalar(select(Team).where(Team.name == "Sales"))
    with_menu(telegram_channel, articles, team_id=sales.id)
    customer_writes(app, telegram_channel, "Добрый день")
    conversation = press(app, telegram_channel, telegram_api, "menu:3")
    assert conversation.handled_by is None and conversation.team_id == sales.id
    notes = [m.text for m in thread(conversation) if m.direction == "note"]
    assert notes == ["Answer bot: handed to people — customer chose: Оператор."]
    assert events("bot.handoff")[0]["reason"] == "menu_choice"
    assert telegram_api.calls("sendMessage")[-1].params["text"] == \
        "Передаю ваш вопрос оператору — вам ответят здесь же."


def test_a_stale_menu_button_hands_over(app, telegram_channel, telegram_api, articles):
    with_menu(telegram_channel, articles)
    customer_writes(app, telegram_channel, "Добрый день")
    fresh = db.session.get(Channel, telegram_channel.id)
    fresh.settings = {k: v for k, v in fresh.settings.items() if k != "bot_menu"}
    db.session.commit()
    conversation = press(app, telegram_channel, telegram_api, "menu:2")
    assert conversation.handled_by is None
    assert events("bot.handoff")[0]["reason"] == "missing_menu_item"


def menu_of(*items, greeting="Привет"):
    return {"settings": {"bot_menu": {"greeting": greeting, "items": list(items)}}}


@pytest.mark.parametrize("body, field, reason", [
    (menu_of({"title": "Доставка", "action": "article", "article_id": 99999}),
     "settings.bot_menu.items.0.article_id", "no published article 99999"),
    (menu_of({"title": "Очень длинное название кнопки", "action": "handoff"}),
     "settings.bot_menu.items.0.title", "at most 20 characters"),
    (menu_of(*[{"title": f"Пункт {n}", "action": "handoff"} for n in range(11)]),
     "settings.bot_menu.items", "at most 10 items"),
    (menu_of({"title": "Что-то", "action": "dance"}),
     "settings.bot_menu.items.0.action", "one of article, handoff, text"),
    (menu_of({"title": "Текст", "action": "text"}),
     "settings.bot_menu.items.0.text", "required"),
    (menu_of({"title": "Люди", "action": "handoff", "team_id": 99999}),
     "settings.bot_menu.items.0.team_id", "no team 99999"),
    (menu_of({"title": "Люди", "action": "handoff"}, greeting=""),
     "settings.bot_menu.greeting", "required"),
])
def test_bad_menus_are_refused_naming_the_field(api, telegram_channel, articles, body, field,
                                                reason):
    answer = api.patch(f"/channels/{telegram_channel.id}", json=body)
    assert answer.status_code == 422, answer.json
    ((named, (said,)),) = answer.json["detail"]["json"].items()
    assert named == field and reason in said, answer.json
    db.session.expire_all()
    assert "bot_menu" not in db.session.get(Channel, telegram_channel.id).settings


def test_a_good_menu_is_saved_normalized(api, telegram_channel, articles):
    answer = api.patch(f"/channels/{telegram_channel.id}", json=menu_of(
        {"title": " Доставка ", "action": "ARTICLE", "article_id": str(articles["delivery"])},
        {"title": "Оператор", "action": "handoff"}))
    assert answer.status_code == 200, answer.json
    db.session.expire_all()
    assert db.session.get(Channel, telegram_channel.id).settings["bot_menu"] == {
        "greeting": "Привет", "items": [
            {"title": "Доставка", "action": "article", "article_id": articles["delivery"]},
            {"title": "Оператор", "action": "handoff"}]}
