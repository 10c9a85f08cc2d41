"""Authentic payloads that are hard to read or too big: stored raw, answered 200, and either
processed with a bounded, NUL-free text or marked failed (README "HTTP": nothing is lost).

Runs on SQLite and, with THREADLINE_TEST_DATABASE_URL, on PostgreSQL (where a NUL character
cannot be stored in text or jsonb at all)."""
from __future__ import annotations

import base64
import json

import pytest
from sqlalchemy import func, select

from app.infra.models import InboundEvent, Message
from app.infra.state import db
from tests.conftest import run_jobs, telegram_update
from tests.fakes.graph_api import sign

SECRET = {"X-Telegram-Bot-Api-Secret-Token": "s3cret-token-value",
          "Content-Type": "application/json"}
WA_SECRET = "wa-app-secret-value"
WA_NUMBER = "1122334455667"


@pytest.fixture
def wa_channel(ctx):
    from app.domain.channels import add_channel

    channel = add_channel("whatsapp", "WhatsApp PL", {
        "phone_number_id": WA_NUMBER, "access_token": "test-access-token",
        "app_secret": WA_SECRET, "verify_token": "verify-me-please",
        "api_base_url": "http://127.0.0.1:9"})      # never called: nothing is sent here
    db.session.commit()
    return channel


def _telegram(app, channel, body: bytes):
    return app.test_client().post(f"/webhooks/telegram/{channel.id}", data=body, headers=SECRET)


def _whatsapp(app, channel, body: bytes):
    return app.test_client().post(
        f"/webhooks/whatsapp/{channel.id}", data=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, WA_SECRET)})


def _wa_text(wamid: str, text: str, wa_id: str = "48601234567") -> dict:
    return {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "48221234567", "phone_number_id": WA_NUMBER},
            "contacts": [{"profile": {"name": "Zofia"}, "wa_id": wa_id}],
            "messages": [{"from": wa_id, "id": wamid, "timestamp": "1764000000", "type": "text",
                          "text": {"body": text}}]}}]}]}


def _events() -> list[InboundEvent]:
    db.session.expire_all()
    return list(db.session.scalars(select(InboundEvent).order_by(InboundEvent.id)))


def _messages() -> list[Message]:
    db.session.expire_all()
    return list(db.session.scalars(select(Message).order_by(Message.id)))


def _deep(depth: int) -> bytes:
    return b'{"update_id": 5, "message": ' + b"[" * depth + b"]" * depth + b"}"


def test_telegram_payload_with_nul_is_stored_and_processed(app, ctx, telegram_channel):
    update = telegram_update(41, 7001, "Zamówienie\u0000 №1543 — когда\u0000 будет?",
                             first_name="Zo\u0000fia")
    body = json.dumps(update).encode()
    assert b"\\u0000" in body
    response = _telegram(app, telegram_channel, body)
    assert response.status_code == 200, response.data
    run_jobs(app)
    (event,) = _events()
    assert event.status == "processed", event.error
    (message,) = _messages()
    assert "\x00" not in message.text
    assert message.text == "Zamówienie\ufffd №1543 — когда\ufffd будет?"
    # a repeated delivery of the same bytes is still a no-op
    assert _telegram(app, telegram_channel, body).status_code == 200
    run_jobs(app)
    assert len(_events()) == 1 and len(_messages()) == 1


def test_whatsapp_payload_with_nul_is_stored_and_processed(app, ctx, wa_channel):
    body = json.dumps(_wa_text("wamid.NUL1", "Dzień dobry\u0000, Привет")).encode()
    response = _whatsapp(app, wa_channel, body)
    assert response.status_code == 200, response.data
    run_jobs(app)
    (event,) = _events()
    assert event.status == "processed", event.error
    (message,) = _messages()
    assert message.text == "Dzień dobry\ufffd, Привет"


def test_raw_nul_bytes_in_an_unreadable_body_are_kept_exactly(app, ctx, telegram_channel):
    body = b'{"update_id": 42, "message": "a\x00b\xff'          # not JSON, not even UTF-8
    response = _telegram(app, telegram_channel, body)
    assert response.status_code == 200, response.data
    run_jobs(app)
    (event,) = _events()
    assert event.status == "failed" and event.error
    assert base64.b64decode(event.payload["_unparsed_base64"]) == body
    assert _messages() == []


@pytest.mark.parametrize("depth", [10_000, 200])
def test_deeply_nested_telegram_json_is_kept_raw_and_failed(app, ctx, telegram_channel, depth):
    body = _deep(depth)
    response = _telegram(app, telegram_channel, body)
    assert response.status_code == 200, response.data
    assert response.json["ok"] is True
    run_jobs(app)
    (event,) = _events()
    assert event.status == "failed", event.error
    assert "nested" in event.error
    assert event.payload == {"_unparsed": body.decode()}
    assert _messages() == []
    # the same bytes again: acknowledged, stored once
    assert _telegram(app, telegram_channel, body).status_code == 200
    assert len(_events()) == 1


def test_deeply_nested_whatsapp_json_is_kept_raw_and_failed(app, ctx, wa_channel):
    inner = b"[" * 10_000 + b"]" * 10_000
    body = b'{"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": ' + inner + b"}]}"
    response = _whatsapp(app, wa_channel, body)
    assert response.status_code == 200, response.data
    run_jobs(app)
    (event,) = _events()
    assert event.status == "failed" and "nested" in event.error
    assert event.payload == {"_unparsed": body.decode()}
    # an unsigned copy still stores nothing
    forged = app.test_client().post(f"/webhooks/whatsapp/{wa_channel.id}", data=body,
                                    headers={"Content-Type": "application/json"})
    assert forged.status_code in (401, 403)
    assert len(_events()) == 1


def test_a_huge_telegram_text_is_stored_bounded_and_marked_cut(app, ctx, telegram_channel):
    # 58,000 characters: 14 times Telegram's own limit, in a body under limits.webhook_bytes
    text = ("Привет, zażółć gęślą jaźń 😀\n\n" * 2_000)
    assert len(text) == 58_000
    update = telegram_update(43, 7002, text)
    response = _telegram(app, telegram_channel, json.dumps(update).encode())
    assert response.status_code == 200
    run_jobs(app)
    (event,) = _events()
    assert event.status == "processed", event.error
    assert event.payload["message"]["text"] == text              # the raw payload is whole
    (message,) = _messages()
    kept, marker = message.text[:4096], message.text[4096:]
    assert kept == text[:4096]
    assert len(message.text) < 4096 + 200
    assert "58,000" in marker and "4,096" in marker           # says it was cut, and how much
    assert message.meta["text_cut"] == {"chars": 58_000, "kept": 4096}


def test_a_huge_whatsapp_text_is_stored_bounded_and_marked_cut(app, ctx, wa_channel):
    text = "Dzień dobry, proszę o fakturę. Здравствуйте! " * 5_000      # 225,000 characters
    body = json.dumps(_wa_text("wamid.BIG1", text)).encode()
    assert _whatsapp(app, wa_channel, body).status_code == 200
    run_jobs(app)
    (message,) = _messages()
    assert message.text.startswith(text[:65_536]) and len(message.text) < 65_536 + 200
    assert "225,000" in message.text[65_536:]
    assert db.session.scalar(select(func.count(InboundEvent.id))) == 1


def test_a_text_within_the_cap_is_untouched(app, ctx, telegram_channel):
    text = "ы" * 4096
    _telegram(app, telegram_channel, json.dumps(telegram_update(44, 7003, text)).encode())
    run_jobs(app)
    (message,) = _messages()
    assert message.text == text and "text_cut" not in (message.meta or {})


def test_bounded_inbound_caps_per_channel_and_strips_nul():
    from datetime import datetime, timezone

    from connectors import get_connector
    from connectors.base import EMAIL, Handle, Inbound, bounded_inbound, load_json

    assert get_connector("telegram").max_text_chars == 4096
    assert get_connector("whatsapp").max_text_chars == 65_536
    assert get_connector("email").max_text_chars == 65_536
    mail = Inbound(external_id="<a@b>", sender=Handle(EMAIL, "zofia@example.pl"),
                   sent_at=datetime.now(timezone.utc), text="Ж" * 70_000,
                   html="<p>" + "x" * 600_000 + "</p>", subject="Faktura\x00 №7",
                   sender_name="Zofia\x00", meta={"headers": {"X-Note": "a\x00b"}})
    cut = bounded_inbound(mail, get_connector("email").max_text_chars)
    assert cut.text.startswith("Ж" * 65_536) and "70,000" in cut.text[65_536:]
    assert cut.html is None and cut.meta["html_dropped"] == {"chars": 600_007}
    assert cut.subject == "Faktura\ufffd №7" and cut.sender_name == "Zofia\ufffd"
    assert cut.meta["headers"] == {"X-Note": "a\ufffdb"}
    small = Inbound(external_id="1", sender=Handle(EMAIL, "a@example.pl"),
                    sent_at=datetime.now(timezone.utc), text="Dzień dobry")
    assert bounded_inbound(small) is small
    assert load_json(b'{"a": "x\\u0000y", "b\\u0000": [1]}') == {"a": "x\ufffdy", "b\ufffd": [1]}
    assert load_json(b"[" * 64 + b"]" * 64) is not None
    for body in (b"[" * 65 + b"]" * 65, b"[" * 100_000, b"\xff", b"{"):
        with pytest.raises(Exception) as info:
            load_json(body)
        assert type(info.value).__name__ == "MalformedPayload"
