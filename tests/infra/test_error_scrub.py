"""Error texts stored for admins (channel, message, inbound event, attachment, webhook
delivery) are scrubbed of secrets like log lines are (issue 14, Low)."""
from __future__ import annotations

from sqlalchemy import select

from app.domain.channels import add_channel
from app.infra.logs import register_channel_secrets
from app.infra.models import Channel, Conversation, Customer, InboundEvent, Message
from app.infra.state import db
from connectors import get_connector


def test_stored_errors_carry_no_secrets(ctx):
    channel = add_channel("whatsapp", "WA", {
        "phone_number_id": "1001", "access_token": "EAAG-very-secret-access-token",
        "app_secret": "app-secret-value-42", "verify_token": "verify-me-please"})
    db.session.commit()
    register_channel_secrets(get_connector("whatsapp"), channel.settings)
    channel.error = ("401 from https://graph.facebook.com/v21.0/1001/messages?access_token="
                     "EAAG-very-secret-access-token; Telegram said bot123456:AAHsecretTOKENvalue1 bad")
    customer = Customer(name="Иван")
    db.session.add(customer)
    db.session.flush()
    conversation = Conversation(customer_id=customer.id, channel_id=channel.id)
    db.session.add(conversation)
    db.session.flush()
    message = Message(conversation_id=conversation.id, customer_id=customer.id,
                      channel_id=channel.id, direction="out", text="Привет", status="failed",
                      error="signature with app-secret-value-42 and key test-secret-key-0123456789")
    event = InboundEvent(channel_id=channel.id, external_id="x-1", payload={},
                         status="failed", error="verify-me-please did not match")
    db.session.add_all([message, event])
    db.session.commit()
    db.session.expire_all()
    stored = [db.session.get(Channel, channel.id).error, db.session.get(Message, message.id).error,
              db.session.scalar(select(InboundEvent.error))]
    for text in stored:
        for secret in ("EAAG-very-secret-access-token", "AAHsecretTOKENvalue1", "app-secret-value-42",
                       "test-secret-key-0123456789", "verify-me-please"):
            assert secret not in text, text
    assert "***" in stored[0] and stored[1].startswith("signature with ***")
