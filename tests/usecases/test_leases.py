"""Claims of a dead worker are recovered in seconds, not after `stale_after` (issue 14,
reliability): sends and webhook deliveries are held by a lease a live worker renews, and the
sweeper wakes the drains whenever work waits."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.infra.models import Conversation, Message, WebhookDelivery, utcnow
from app.infra.state import db
from app.usecases.ingest import receive
from tests.conftest import run_jobs, telegram_update, wait_until


@pytest.fixture(autouse=True)
def _slow_staleness(app):
    """`stale_after` far away: whatever is recovered here is recovered by the lease."""
    jobs = app.config["THREADLINE"]["jobs"]
    jobs["stale_after"], jobs["lease"] = 120.0, 1.0


@pytest.fixture
def conversation(ctx, telegram_channel):
    receive(telegram_channel, "1", telegram_update(1, 4242, "Где мой заказ?"), process="inline")
    conversation = db.session.scalar(select(Conversation))
    db.session.commit()
    return conversation


def fresh(model, row_id):
    db.session.expire_all()
    row = db.session.get(model, row_id)
    db.session.commit()
    return row


def test_a_send_claimed_by_a_dead_worker_is_reclaimed_within_seconds(app, ctx, conversation,
                                                                    telegram_api):
    from app.wiring import sweep

    # what a SIGKILLed worker leaves: the message claimed ("sending", attempt 1), its lease
    # last renewed 1.5 s ago (lease 1 s), long before `stale_after` (120 s)
    message = Message(conversation_id=conversation.id, customer_id=conversation.customer_id,
                      channel_id=conversation.channel_id, direction="out", text="Zażółć, ёлка",
                      status="sending", attempts=1, created_at=utcnow(),
                      locked_at=utcnow() - timedelta(seconds=1.5))
    db.session.add(message)
    db.session.commit()
    counts = sweep()
    assert counts["revived"] == 1
    run_jobs(app)
    sent = fresh(Message, message.id)
    assert sent.status == "sent" and sent.attempts == 2 and sent.locked_at is None
    assert telegram_api.delivery_count(4242, "Zażółć, ёлка") == 1


def test_a_claim_this_process_still_works_on_is_not_taken_back_when_its_renewal_is_late(
        app, ctx, conversation):
    """A starved machine (or SQLite's write lock busy for seconds) may delay a renewal past
    the lease: the sweep of the process that holds the claim leaves it alone; once the claim
    is let go (its worker would be dead), the sweep takes it back."""
    from app.infra.queues import Lease
    from app.wiring import sweep

    message = Message(conversation_id=conversation.id, customer_id=conversation.customer_id,
                      channel_id=conversation.channel_id, direction="out", text="Spóźniony",
                      status="sending", attempts=1, created_at=utcnow(),
                      locked_at=utcnow() - timedelta(seconds=1.5))
    db.session.add(message)
    db.session.commit()
    lease = Lease(db.engine, Message, [message.id], 3600)   # renews once an hour: "late"
    with lease:
        assert Lease.held(Message) == [message.id]
        assert sweep()["revived"] == 0
        assert fresh(Message, message.id).status == "sending"
    assert Lease.held(Message) == []
    assert sweep()["revived"] == 1   # back to queued (and claimed again: attempt 2)
    row = fresh(Message, message.id)
    assert row.status == "queued" or row.attempts == 2


@pytest.mark.parametrize("backend", ["sqlite"])  # the worker is a thread of this process
def test_a_live_workers_claim_is_renewed_and_not_taken_back(backend, app, ctx, api,
                                                           conversation, telegram_api):
    from app.wiring import sweep

    telegram_api.hold("sendMessage")
    try:
        response = api.post(f"/conversations/{conversation.id}/messages",
                            json={"text": "Долгая отправка"})
        message_id = response.json["id"]
        telegram_api.wait_for("sendMessage", 1, timeout=20)
        claimed_at = fresh(Message, message_id).locked_at

        def renewed_past_the_lease():
            # the sweeper runs all along and must never take the claim back
            assert sweep()["revived"] == 0
            return fresh(Message, message_id).locked_at > claimed_at + timedelta(seconds=1.5)

        wait_until(renewed_past_the_lease, timeout=20, interval=0.2,
                   message="the lease renewed past its first term")
    finally:
        telegram_api.release("sendMessage")
    run_jobs(app)
    assert fresh(Message, message_id).status == "sent"
    assert telegram_api.delivery_count(4242, "Долгая отправка") == 1


def test_a_worker_whose_claim_was_taken_back_does_not_send(app, ctx, conversation,
                                                           telegram_api):
    """The fence: a worker that stalled past its lease finds the message claimed again by
    another (a higher attempt number) and leaves it alone."""
    from app.usecases import outbox

    message = Message(conversation_id=conversation.id, customer_id=conversation.customer_id,
                      channel_id=conversation.channel_id, direction="out", text="Один раз",
                      status="sending", attempts=2, created_at=utcnow(), locked_at=utcnow())
    db.session.add(message)
    db.session.commit()
    original = outbox._still_claimed
    outbox._still_claimed = lambda session, mid, attempts: original(session, mid, 1)
    try:
        assert outbox._send_claimed(db.session, message.id) == "skipped"
    finally:
        outbox._still_claimed = original
    assert telegram_api.calls("sendMessage") == []
    assert fresh(Message, message.id).status == "sending"  # the new owner's claim stands


def test_an_event_acknowledged_by_a_killed_server_is_applied_by_the_next_sweep(
        app, ctx, telegram_channel):
    """The webhook answered 200 and stored the event, then the process died before its
    drain ran: the next sweep (seconds later, not `stale_after`) applies it."""
    from app.wiring import sweep

    result = receive(telegram_channel, "77", telegram_update(77, 4343, "Ты тут?"),
                     process="none")
    assert sweep()["woken"] >= 1
    run_jobs(app)
    db.session.expire_all()
    assert db.session.scalar(select(Message.text).where(Message.text == "Ты тут?")) == "Ты тут?"
    assert sweep()["woken"] == 0  # nothing waits any more


def test_a_webhook_delivery_claimed_by_a_dead_worker_is_reclaimed(app, ctx, api, monkeypatch):
    from app.infra.state import config

    # the receiver listens on loopback: allowed for this test
    monkeypatch.setitem(config["security"], "allow_private_webhook_urls", True)
    from tests.usecases.test_hooks import Receiver
    from app.wiring import sweep

    receiver = Receiver(fail=0)
    try:
        created = api.post("/webhooks", json={"url": receiver.url, "events": ["deal.updated"]})
        assert created.status_code == 201, created.json
        receiver.secret = created.json["secret"]
        response = api.post("/deals", json={"external_ref": "d-1", "title": "Сделка",
                                            "customer": {"email": "kupiec@example.pl"}})
        assert response.status_code == 201, response.json
        run_jobs(app)
        delivery = db.session.scalar(select(WebhookDelivery))
        assert delivery.status == "delivered" and len(receiver.requests) == 1
        # an admin's replay was claimed by a worker that died mid-request: "sending", its
        # lease last renewed 1.5 s ago (lease 1 s, stale_after 120 s)
        delivery.status, delivery.attempts = "sending", 1
        delivery.locked_at = utcnow() - timedelta(seconds=1.5)
        db.session.commit()
        assert sweep()["webhooks"] == 1
        run_jobs(app)
        assert fresh(WebhookDelivery, delivery.id).status == "delivered"
        assert [r["event"] for r in receiver.requests] == ["deal.updated", "deal.updated"]
        assert all(r["valid"] for r in receiver.requests)
    finally:
        receiver.close()
