"""Quick-reply buttons through the app: an outbound message's meta["buttons"] goes out as a
Telegram inline keyboard / WhatsApp reply buttons (real clients against the local fakes); the
customer's press comes back as a message with meta["button_id"], and Telegram's callback
query is answered after commit."""
from __future__ import annotations

from sqlalchemy import select

from app.infra.models import Conversation, Message
from app.infra.state import db
from app.usecases.ingest import receive
from app.usecases.outbox import enqueue_reply
from tests.conftest import run_jobs, telegram_update
from tests.web.test_webhooks_whatsapp import graph, post, text_message, wa_channel  # noqa: F401

BUTTONS = [{"id": "kb:5:yes", "title": "Да, спасибо"}, {"id": "kb:5:no", "title": "Нет, нужен человек"}]


def test_telegram_keyboard_out_and_press_back(app, ctx, telegram_channel, telegram_api):
    receive(telegram_channel, "1", telegram_update(1, 4242, "Сколько идёт доставка?"),
            process="inline")
    conversation = db.session.scalar(select(Conversation))
    reply = enqueue_reply(db.session, conversation, None, "2–3 дня. Помогло?",
                          meta={"buttons": BUTTONS})
    db.session.commit()
    run_jobs(app)
    (call,) = telegram_api.calls("sendMessage")
    assert [row[0]["callback_data"] for row in call.params["reply_markup"]["inline_keyboard"]] \
        == ["kb:5:yes", "kb:5:no"]
    db.session.expire_all()
    sent = db.session.get(Message, reply.id)
    chat, message_id = sent.external_id.split(":")
    press = {"update_id": 2, "callback_query": {
        "id": "cbq-77", "from": {"id": 4242, "is_bot": False, "first_name": "Анна"},
        "message": telegram_api.message(int(chat), int(message_id)), "chat_instance": "9",
        "data": "kb:5:no"}}
    response = app.test_client().post(
        f"/webhooks/telegram/{telegram_channel.id}", json=press,
        headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-token-value"})
    assert response.status_code == 200
    run_jobs(app)
    db.session.expire_all()
    pressed = db.session.scalar(select(Message).where(Message.external_id == "callback:cbq-77"))
    assert pressed.direction == "in" and pressed.text == "Нет, нужен человек"
    assert pressed.meta["button_id"] == "kb:5:no"
    assert pressed.reply_to_id == reply.id and pressed.conversation_id == conversation.id
    (answered,) = telegram_api.wait_for("answerCallbackQuery")
    assert answered.params["callback_query_id"] == "cbq-77"


def test_whatsapp_reply_buttons_out_and_press_back(app, ctx, wa_channel, graph):  # noqa: F811
    assert post(app, wa_channel, text_message("wamid.IN1", "Jak długo trwa dostawa?")).status_code == 200
    run_jobs(app)
    conversation = db.session.scalar(select(Conversation))
    reply = enqueue_reply(db.session, conversation, None, "2–3 dni. Czy to pomogło?",
                          meta={"buttons": [{"id": "kb:5:yes", "title": "Tak"},
                                            {"id": "kb:5:no", "title": "Nie"}]})
    db.session.commit()
    run_jobs(app)
    body = graph.sent()[-1]
    assert body["type"] == "interactive"
    assert [b["reply"]["id"] for b in body["interactive"]["action"]["buttons"]] \
        == ["kb:5:yes", "kb:5:no"]
    press = text_message("wamid.IN2", "")
    message = press["entry"][0]["changes"][0]["value"]["messages"][0]
    message.pop("text")
    message.update(type="interactive", interactive={
        "type": "button_reply", "button_reply": {"id": "kb:5:yes", "title": "Tak"}})
    assert post(app, wa_channel, press).status_code == 200
    run_jobs(app)
    db.session.expire_all()
    pressed = db.session.scalar(select(Message).where(Message.external_id == "wamid.IN2"))
    assert pressed.text == "Tak" and pressed.meta["button_id"] == "kb:5:yes"
    assert db.session.get(Message, reply.id).status == "sent"
