"""The site chat's email fallback: a reply the visitor never saw reaches their inbox."""
from __future__ import annotations

from datetime import timedelta
from email import message_from_bytes, policy

import pytest
from sqlalchemy import select

from app.domain.channels import add_channel
from app.usecases.ingest import receive
from app.infra.models import Message
from app.wiring import sweep
from app.infra.state import db
from tests.conftest import run_jobs
from tests.servers.smtp import RecordingSMTP


@pytest.fixture
def smtp():
    with RecordingSMTP() as server:
        yield server


def visitor_writes(channel, message_id: str, text: str, email: str | None) -> None:
    payload = {"visitor_id": "v-123", "message_id": message_id, "text": text}
    if email:
        payload["prechat"] = {"name": "Marta", "email": email}
    receive(channel, message_id, payload, process="inline")


def age_replies(seconds: int) -> None:
    for message in db.session.scalars(select(Message).where(Message.direction == "out")):
        message.sent_at = message.sent_at - timedelta(seconds=seconds)
    db.session.commit()


def test_unseen_replies_are_emailed_once_in_one_batch(app, ctx, api, smtp):
    widget = add_channel("webchat", "Sklep", {"allowed_origins": "https://shop.example"})
    add_channel("email", "Support mailbox", {
        "imap_host": "127.0.0.1", "imap_user": "u", "imap_password": "p", "imap_security": "none",
        **smtp.settings(), "from_address": "support@shop.example"})
    db.session.commit()
    visitor_writes(widget, "w1", "Czy macie rozmiar 38?", "marta@example.pl")
    conversation_id = db.session.scalar(select(Message.conversation_id))
    for text in ("Tak, mamy!", "Wysyłka jutro."):
        assert api.post(f"/conversations/{conversation_id}/messages", json={"text": text}).status_code == 201
    run_jobs(app)
    assert sweep()["queued"] == 0 and smtp.received == []  # not yet due: the visitor may be there
    age_replies(600)
    sweep()
    run_jobs(app)
    assert len(smtp.received) == 1
    mail = message_from_bytes(smtp.received[0].raw, policy=policy.default)
    assert list(smtp.received[0].rcpt_tos) == ["marta@example.pl"]
    body = mail.get_body(("plain",)).get_content()
    assert "Tak, mamy!" in body and "Wysyłka jutro." in body
    sweep()
    run_jobs(app)
    assert len(smtp.received) == 1  # never twice


def test_no_address_no_email(app, ctx, api, smtp):
    widget = add_channel("webchat", "Sklep", {"allowed_origins": "https://shop.example"})
    db.session.commit()
    visitor_writes(widget, "w1", "Hello?", None)
    conversation_id = db.session.scalar(select(Message.conversation_id))
    api.post(f"/conversations/{conversation_id}/messages", json={"text": "Hi!"})
    run_jobs(app)
    age_replies(600)
    sweep()
    run_jobs(app)
    reply = db.session.scalar(select(Message).where(Message.direction == "out"))
    db.session.refresh(reply)
    assert reply.meta["emailed"] == "no visitor email" and smtp.received == []
