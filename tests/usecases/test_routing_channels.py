"""Auto-replies of rules on each channel, through the real outbox to the local fakes, obeying
the channel's rules: WhatsApp (24-hour window: a closed one is a recorded failure, never a
silent drop) and Telegram."""
from __future__ import annotations

import time

from sqlalchemy import select

from app.infra.models import AutomationRule, CannedReply, ConversationActivity, Message
from app.infra.state import db
from tests.conftest import run_jobs
from tests.web.test_webhooks_whatsapp import graph, post, text_message, wa_channel  # noqa: F401


def _greeting_rule() -> None:
    reply = CannedReply(shortcut="hello", text="Dzień dobry, {{customer.first_name}}! Zaraz odpowiemy.")
    db.session.add(reply)
    db.session.flush()
    db.session.add(AutomationRule(name="Greeting", event="conversation_created", conditions=[],
                                  actions=[{"type": "auto_reply", "canned_reply_id": reply.id}],
                                  enabled=True, position=0, options={}))
    db.session.commit()


def test_whatsapp_greeting_inside_the_window_and_a_recorded_failure_outside(app, ctx, wa_channel,
                                                                         graph):  # noqa: F811
    _greeting_rule()
    post(app, wa_channel, text_message("wamid.NEW", "Cześć", wa_id="48600100200", name="Zofia Nowak"))
    run_jobs(app)
    sent = [m for m in graph.sent() if m.get("type") == "text"]
    assert len(sent) == 1 and sent[0]["to"] == "48600100200"
    assert sent[0]["text"]["body"] == "Dzień dobry, Zofia! Zaraz odpowiemy."
    # a message two days old (delivered late): the window is closed, nothing is sent, the
    # failure is on the conversation and the rule, the conversation waits in the queue
    post(app, wa_channel, text_message("wamid.OLD", "Hello?", wa_id="447700900123", name="Ann",
                                       timestamp=int(time.time()) - 2 * 86400))
    run_jobs(app)
    db.session.expire_all()
    assert len([m for m in graph.sent() if m.get("type") == "text"]) == 1
    late = db.session.scalar(select(Message).where(Message.external_id == "wamid.OLD"))
    failures = list(db.session.scalars(select(ConversationActivity.text).where(
        ConversationActivity.conversation_id == late.conversation_id,
        ConversationActivity.kind == "rule_failed")))
    assert len(failures) == 1 and "24-hour window" in failures[0], failures
    assert late.conversation.waiting_since is not None
    rule = db.session.scalar(select(AutomationRule))
    assert rule.failed_count == 1 and rule.fired_count == 2
    assert db.session.scalar(select(Message.id).where(
        Message.conversation_id == late.conversation_id, Message.direction == "out")) is None
    db.session.commit()


def test_a_rule_calls_an_outgoing_webhook(app, ctx, api, telegram_channel, monkeypatch):
    from app.infra.state import config

    # the receiver listens on loopback: allowed for this test
    monkeypatch.setitem(config["security"], "allow_private_webhook_urls", True)
    from tests.conftest import wait_until
    from tests.inbox_helpers import inbound
    from tests.usecases.test_hooks import Receiver

    receiver = Receiver(fail=0)
    try:
        created = api.post("/webhooks", json={"url": receiver.url, "events": ["deal.updated"]})
        assert created.status_code == 201, created.json
        receiver.secret = created.json["secret"]
        endpoint_id = created.json["id"]
        rule = api.post("/automation/rules", json={
            "name": "VIP to the CRM", "event": "customer_message",
            "conditions": [{"type": "text_contains", "words": ["VIP"]}],
            "actions": [{"type": "webhook", "endpoint_id": endpoint_id}]})
        assert rule.status_code == 201, rule.json
        inbound(telegram_channel, 4343, "Я VIP-клиент")
        inbound(telegram_channel, 4344, "обычный вопрос")
        run_jobs(app)
        wait_until(lambda: receiver.requests, timeout=20, message="the webhook")
        run_jobs(app)
        assert len(receiver.requests) == 1
        sent = receiver.requests[0]
        assert sent["valid"] and sent["event"] == "automation.webhook"
        assert sent["body"]["data"]["rule"]["name"] == "VIP to the CRM"
        assert sent["body"]["data"]["conversation"]["last_message_preview"] == "Я VIP-клиент"
        bad = api.post("/automation/rules", json={"name": "x", "event": "customer_message",
                                                  "actions": [{"type": "webhook"}]})
        assert bad.status_code == 422 and "actions.0.endpoint_id" in bad.json["detail"]["json"]
    finally:
        receiver.close()
