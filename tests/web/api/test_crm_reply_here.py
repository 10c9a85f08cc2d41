""""Reply here" on a handle of the CRM card: a reply names the customer's identity it goes to
(`identity_id`), on a channel that can reach it; the channel gets exactly that address."""
from __future__ import annotations

import time

from sqlalchemy import select

from app.infra.models import Identity, Message
from app.infra.state import db
from tests.conftest import run_jobs
from tests.web.test_webhooks_whatsapp import graph, post, text_message  # noqa: F401
from tests.usecases.test_crm import customer_of, telegram_own_contact, telegram_text, wa_channel  # noqa: F401


def identity_id(kind: str, value: str) -> int:
    return db.session.scalar(select(Identity.id).where(Identity.kind == kind, Identity.value == value))


def timeline(api, conversation_id: int) -> dict:
    answer = api.get(f"/conversations/{conversation_id}/timeline")
    assert answer.status_code == 200, answer.json
    return answer.json


def test_reply_here_picks_channel_and_handle(app, ctx, api, graph, wa_channel,  # noqa: F811
                                             telegram_channel, telegram_api):
    # one customer on WhatsApp and Telegram ("share my phone" links them); Telegram is latest
    assert post(app, wa_channel, text_message("wamid.R1", "Здравствуйте", wa_id="79161234567",
                                              name="Иван Петров",
                                              timestamp=int(time.time()) - 60)).status_code == 200
    run_jobs(app)
    telegram_own_contact(app, telegram_channel, 5551, "79161234567", "Иван")
    telegram_text(app, telegram_channel, 5551, "Ответьте в WhatsApp, пожалуйста", "Иван")
    run_jobs(app)
    customer_id = customer_of("telegram", "5551")
    conversation_id = db.session.scalar(select(Message.conversation_id)
                                        .where(Message.customer_id == customer_id).limit(1))
    data = timeline(api, conversation_id)
    assert data["default_channel_id"] == telegram_channel.id
    kinds = {c["id"]: c["identity_kinds"] for c in data["reply_channels"]}
    assert kinds == {telegram_channel.id: ["telegram"], wa_channel.id: ["whatsapp", "phone"]}
    handles = {(i["kind"], i["value"]): i["id"] for i in data["customer"]["identities"]}
    wa_handle = handles[("whatsapp", "79161234567")]
    assert wa_handle == identity_id("whatsapp", "79161234567")

    # "reply here" on the WhatsApp handle: no channel named, the handle picks WhatsApp
    sent = api.post(f"/conversations/{conversation_id}/messages",
                    json={"text": "Пишу вам в WhatsApp", "identity_id": wa_handle})
    assert sent.status_code == 201, sent.json
    assert sent.json["channel_id"] == wa_channel.id
    assert sent.json["meta"]["to"] == "whatsapp:79161234567"
    run_jobs(app)
    db.session.expire_all()
    message = db.session.get(Message, sent.json["id"])
    assert message.status == "sent", message.error
    assert graph.sent()[-1]["to"] == "79161234567"
    assert graph.sent()[-1]["text"]["body"] == "Пишу вам в WhatsApp"
    assert telegram_api.calls("sendMessage") == []

    # a reply with no handle named still follows the latest inbound channel (Telegram)
    plain = api.post(f"/conversations/{conversation_id}/messages", json={"text": "И сюда"})
    assert plain.status_code == 201 and plain.json["channel_id"] == telegram_channel.id
    assert "to" not in plain.json["meta"]

    # a handle the channel cannot reach, or one of another customer: 422 naming identity_id
    wrong = api.post(f"/conversations/{conversation_id}/messages", json={
        "text": "x", "identity_id": handles[("telegram", "5551")], "channel_id": wa_channel.id})
    assert wrong.status_code == 422 and "identity_id" in wrong.json["detail"]["json"]
    telegram_text(app, telegram_channel, 7777, "Другой человек", "Пётр")
    run_jobs(app)
    stranger = identity_id("telegram", "7777")
    wrong = api.post(f"/conversations/{conversation_id}/messages",
                     json={"text": "x", "identity_id": stranger})
    assert wrong.status_code == 422 and "identity_id" in wrong.json["detail"]["json"]


def test_two_whatsapp_numbers_of_one_customer(app, ctx, api, graph, wa_channel):  # noqa: F811
    """Several handles on one channel: the reply goes to the one picked, and WhatsApp's
    24-hour window is that number's own."""
    old = int(time.time()) - 3 * 24 * 3600
    assert post(app, wa_channel, text_message("wamid.P1", "Личный номер", wa_id="79161234567",
                                              name="Иван", timestamp=old)).status_code == 200
    assert post(app, wa_channel, text_message("wamid.W1", "Рабочий номер", wa_id="48600100200",
                                              name="Иван Петров")).status_code == 200
    run_jobs(app)
    personal, work = customer_of("whatsapp", "79161234567"), customer_of("whatsapp", "48600100200")
    merged = api.post(f"/customers/{work}/merge", json={"other_id": personal,
                                                        "choose": {"name": "this"}})
    assert merged.status_code == 201, merged.json
    conversation_id = db.session.scalar(select(Message.conversation_id)
                                        .where(Message.external_id == "wamid.W1"))
    handles = {(i["kind"], i["value"]): i["id"]
               for i in timeline(api, conversation_id)["customer"]["identities"]}
    assert set(handles) == {("phone", "+79161234567"), ("whatsapp", "79161234567"),
                            ("phone", "+48600100200"), ("whatsapp", "48600100200")}

    # the personal number wrote three days ago: only a template may go there
    closed = api.post(f"/conversations/{conversation_id}/messages", json={
        "text": "Привет", "identity_id": handles[("whatsapp", "79161234567")]})
    assert closed.status_code == 422 and "template" in closed.json["detail"]["json"]
    template = {"name": "order_update", "language": {"code": "ru"}}
    by_phone = api.post(f"/conversations/{conversation_id}/messages", json={
        "text": "[template order_update]", "template": template, "channel_id": wa_channel.id,
        "identity_id": handles[("phone", "+79161234567")]})
    assert by_phone.status_code == 201, by_phone.json
    work_reply = api.post(f"/conversations/{conversation_id}/messages", json={
        "text": "На рабочий", "identity_id": handles[("whatsapp", "48600100200")]})
    assert work_reply.status_code == 201, work_reply.json
    run_jobs(app)
    sent = graph.sent()
    assert sorted((s["to"], s["type"]) for s in sent) == [("48600100200", "text"),
                                                          ("79161234567", "template")]
