"""WhatsApp through the app: signed webhooks in, media fetched, replies out, statuses."""
from __future__ import annotations

import base64
import copy
import hashlib
import json
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.infra.models import Attachment, Customer, Identity, InboundEvent, Message
from app.infra.state import db
from tests.conftest import run_jobs
from tests.fakes.graph_api import FakeGraphAPI, sign

FIXTURES = Path(__file__).parents[1] / "fixtures" / "whatsapp"
APP_SECRET = "wa-app-secret-value"
NUMBER_ID = "1122334455667"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


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


def post(app, channel, payload: dict | bytes, signature: str | None = "auto"):
    body = payload if isinstance(payload, bytes) else json.dumps(payload, indent=2).encode()
    headers = {"Content-Type": "application/json"}
    if signature == "auto":
        headers["X-Hub-Signature-256"] = sign(body, APP_SECRET)
    elif signature:
        headers["X-Hub-Signature-256"] = signature
    return app.test_client().post(f"/webhooks/whatsapp/{channel.id}", data=body, headers=headers)


def text_message(wamid: str, text: str, wa_id: str = "79161234567", name: str = "Мария",
                 timestamp: int | None = None) -> dict:
    payload = fixture("pywa_message__text.json")
    value = payload["entry"][0]["changes"][0]["value"]
    value["metadata"]["phone_number_id"] = NUMBER_ID
    value["contacts"] = [{"profile": {"name": name}, "wa_id": wa_id}]
    message = value["messages"][0]
    message.update({"from": wa_id, "id": wamid, "timestamp": str(timestamp or int(time.time())),
                    "type": "text", "text": {"body": text}})
    message.pop("context", None)
    return payload


def test_subscription_handshake(app, wa_channel):
    client = app.test_client()
    ok = client.get(f"/webhooks/whatsapp/{wa_channel.id}", query_string={
        "hub.mode": "subscribe", "hub.verify_token": "verify-me-please", "hub.challenge": "1158201444"})
    assert ok.status_code == 200 and ok.data == b"1158201444" and ok.mimetype == "text/plain"
    wrong = client.get(f"/webhooks/whatsapp/{wa_channel.id}", query_string={
        "hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"})
    assert wrong.status_code == 403


def test_signatures_are_checked_over_the_exact_bytes(app, ctx, wa_channel):
    payload = text_message("wamid.A1", "Добрый день")
    assert post(app, wa_channel, payload, signature=None).status_code == 401
    assert post(app, wa_channel, payload, signature="sha256=" + "0" * 64).status_code == 403
    body = json.dumps(payload, indent=2).encode()
    # signed over other bytes (compact JSON) than those posted (pretty-printed)
    assert post(app, wa_channel, body, signature=sign(json.dumps(payload).encode(), APP_SECRET)).status_code == 403
    assert db.session.scalar(select(func.count(InboundEvent.id))) == 0
    assert post(app, wa_channel, body).status_code == 200
    assert post(app, wa_channel, body).json["duplicate"] is True
    run_jobs(app)
    message = db.session.scalar(select(Message))
    assert message.text == "Добрый день" and message.external_id == "wamid.A1"
    identity = db.session.scalar(select(Identity).where(Identity.kind == "phone"))
    assert identity.value == "+79161234567"
    assert identity.customer.name == "Мария"


def test_media_is_fetched_and_checked(app, ctx, wa_channel, graph):
    data = b"\x89PNG fake image bytes" * 10
    graph.add_media("65463453", data, "image/jpeg")
    payload = fixture("pywa_message__image.json")
    media = payload["entry"][0]["changes"][0]["value"]["messages"][0]["image"]
    media["sha256"] = base64.b64encode(hashlib.sha256(data).digest()).decode()
    tampered = copy.deepcopy(payload)
    message = tampered["entry"][0]["changes"][0]["value"]["messages"][0]
    message["id"], message["image"]["id"], message["image"]["sha256"] = "wamid.bad", "999", media["sha256"]
    graph.add_media("999", b"other bytes", "image/jpeg")
    assert post(app, wa_channel, payload).status_code == 200
    assert post(app, wa_channel, tampered).status_code == 200
    run_jobs(app)
    run_jobs(app)  # the download job is queued after the message commits
    db.session.expire_all()
    good = db.session.scalar(select(Attachment).join(Message).where(Message.external_id == "wamid.xyzxyz"))
    assert good.path and good.error is None and good.size == len(data)
    from app.infra.storage import attachment_path

    assert attachment_path(good.path).read_bytes() == data
    bad = db.session.scalar(select(Attachment).join(Message).where(Message.external_id == "wamid.bad"))
    assert bad.path is None and "sha256" in bad.error.lower()


def test_reply_and_statuses_never_move_backwards(app, ctx, api, wa_channel, graph):
    post(app, wa_channel, text_message("wamid.IN1", "Czy jest rozmiar 38?", wa_id="48600100200",
                                       name="Zofia"))
    run_jobs(app)
    conversation_id = db.session.scalar(select(Message.conversation_id))
    reply = api.post(f"/conversations/{conversation_id}/messages", json={"text": "Tak, jest!"})
    assert reply.status_code == 201
    run_jobs(app)
    sent = graph.sent()
    assert sent[-1]["to"] == "48600100200" and sent[-1]["text"]["body"] == "Tak, jest!"
    db.session.expire_all()
    wamid = db.session.get(Message, reply.json["id"]).external_id
    assert wamid and wamid.startswith("wamid.")

    def status(name: str, ts: int) -> dict:
        payload = fixture(f"pywa_message_status__{name}.json")
        value = payload["entry"][0]["changes"][0]["value"]
        value["metadata"]["phone_number_id"] = NUMBER_ID
        value["statuses"][0].update({"id": wamid, "timestamp": str(ts), "recipient_id": "48600100200"})
        return payload

    for name, ts in (("delivered", 200), ("sent", 100), ("delivered", 200)):
        assert post(app, wa_channel, status(name, ts)).status_code == 200
        run_jobs(app)
    db.session.expire_all()
    assert db.session.get(Message, reply.json["id"]).status == "delivered"
    post(app, wa_channel, status("read", 300))
    run_jobs(app)
    db.session.expire_all()
    assert db.session.get(Message, reply.json["id"]).status == "read"
    # Meta delivers out of order: a "delivered" (or "sent") that arrives after "read" is
    # older news and must not overwrite it, nor tell the agents anything.
    updates_before = _count_events("message.updated")
    for name, ts in (("delivered", 310), ("sent", 320)):
        assert post(app, wa_channel, status(name, ts)).status_code == 200
        run_jobs(app)
    db.session.expire_all()
    events = db.session.scalars(select(InboundEvent).order_by(InboundEvent.id)).all()
    assert [e.status for e in events[-2:]] == ["processed", "processed"]   # really applied
    assert db.session.get(Message, reply.json["id"]).status == "read"
    assert _count_events("message.updated") == updates_before


def _count_events(kind: str) -> int:
    from app.infra.models import Event

    db.session.expire_all()
    return db.session.scalar(select(func.count(Event.id)).where(Event.type == kind))


def test_same_phone_on_whatsapp_and_telegram_is_one_customer(app, ctx, wa_channel, telegram_channel):
    from app.usecases.ingest import receive

    post(app, wa_channel, text_message("wamid.P1", "Здравствуйте", wa_id="79161234567", name="Пётр"))
    run_jobs(app)
    share = {"update_id": 900, "message": {
        "message_id": 900, "date": int(time.time()),
        "from": {"id": 3131, "is_bot": False, "first_name": "Пётр"},
        "chat": {"id": 3131, "type": "private", "first_name": "Пётр"},
        "contact": {"phone_number": "79161234567", "first_name": "Пётр", "user_id": 3131}}}
    receive(telegram_channel, "900", share, process="inline")
    assert db.session.scalar(select(func.count(Customer.id))) == 1
    kinds = sorted(i.kind for i in db.session.scalars(select(Identity)))
    assert kinds == ["phone", "telegram", "whatsapp"]
    conversations = {m.conversation_id for m in db.session.scalars(select(Message))}
    assert len(conversations) == 1


def test_closed_window_refuses_free_text_and_takes_a_template(app, ctx, api, wa_channel, graph):
    two_days_ago = int(time.time()) - 2 * 86400
    post(app, wa_channel, text_message("wamid.OLD", "Hello?", wa_id="447700900123", name="Ann",
                                       timestamp=two_days_ago))
    run_jobs(app)
    conversation_id = db.session.scalar(select(Message.conversation_id))
    refused = api.post(f"/conversations/{conversation_id}/messages", json={"text": "Sorry for the delay"})
    assert refused.status_code == 422
    assert "24-hour window" in refused.json["message"] and "template" in refused.json["detail"]["json"]
    assert db.session.scalar(select(func.count(Message.id)).where(Message.direction == "out")) == 0
    template = {"name": "order_update", "language": {"code": "en"},
                "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ann"}]}]}
    accepted = api.post(f"/conversations/{conversation_id}/messages",
                        json={"text": "[template order_update]", "template": template})
    assert accepted.status_code == 201, accepted.json
    run_jobs(app)
    assert graph.sent()[-1]["type"] == "template"
    assert graph.sent()[-1]["template"]["name"] == "order_update"
    db.session.expire_all()
    assert db.session.get(Message, accepted.json["id"]).status == "sent"


def test_catalog_order_lands_on_the_crm_card(app, ctx, wa_channel):
    from decimal import Decimal

    from app.infra.models import Order

    payload = fixture("pywa_message__order.json")
    payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = NUMBER_ID
    assert post(app, wa_channel, payload).status_code == 200
    run_jobs(app)
    order = db.session.scalar(select(Order))
    message = db.session.scalar(select(Message))
    assert order is not None and order.customer_id == message.customer_id
    assert order.external_ref == f"whatsapp:{message.external_id}" and order.items
    expected = sum(Decimal(str(i["item_price"])) * i["quantity"] for i in
                   payload["entry"][0]["changes"][0]["value"]["messages"][0]["order"]["product_items"])
    assert order.total == expected


def test_opening_the_conversation_sends_blue_ticks_when_enabled(app, ctx, api, wa_channel, graph):
    from app.infra.models import Channel

    post(app, wa_channel, text_message("wamid.READ1", "Dzień dobry", wa_id="48600111222"))
    run_jobs(app)
    conversation_id = db.session.scalar(select(Message.conversation_id))
    assert api.post(f"/conversations/{conversation_id}/read").status_code == 200
    run_jobs(app)
    assert [r for r in graph.requests if r.json and r.json.get("status") == "read"] == []  # setting off
    channel = db.session.get(Channel, wa_channel.id)
    channel.settings = {**channel.settings, "mark_read": "true"}
    db.session.commit()
    post(app, wa_channel, text_message("wamid.READ2", "Halo?", wa_id="48600111222"))
    run_jobs(app)
    assert api.post(f"/conversations/{conversation_id}/read").status_code == 200
    run_jobs(app)
    receipts = [r.json for r in graph.requests if r.json and r.json.get("status") == "read"]
    assert receipts == [{"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.READ2"}]


def test_composer_is_offered_the_templates_when_the_window_is_closed(app, ctx, api, wa_channel):
    from app.infra.models import Channel

    channel = db.session.get(Channel, wa_channel.id)
    channel.settings = {**channel.settings, "templates": ["order_update", {"name": "opóźnienie", "language": "pl"}]}
    db.session.commit()
    post(app, wa_channel, text_message("wamid.T1", "Hej", wa_id="48600999888",
                                       timestamp=int(time.time()) - 3 * 86400))
    run_jobs(app)
    conversation_id = db.session.scalar(select(Message.conversation_id))
    timeline = api.get(f"/conversations/{conversation_id}/timeline").json
    (choice,) = [c for c in timeline["reply_channels"] if c["id"] == wa_channel.id]
    assert choice["window_open"] is False
    assert choice["templates"] == [{"name": "order_update", "language": "en"},
                                   {"name": "opóźnienie", "language": "pl"}]
