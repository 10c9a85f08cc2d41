"""The one ingest door: dedupe, customers, conversations, failures and replay."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from app.ingest import process_event, receive, replay_failed
from app.models import Conversation, Customer, Event, Identity, InboundEvent, Message
from app.state import db
from tests.conftest import run_jobs, telegram_update


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_same_event_twice_is_one_message(ctx, telegram_channel):
    first = receive(telegram_channel, "1001", telegram_update(1001, 42, "Привет"), process="inline")
    second = receive(telegram_channel, "1001", telegram_update(1001, 42, "Привет"), process="inline")
    assert first.duplicate is False and first.event_id is not None
    assert second.duplicate is True and second.event_id is None
    assert count(InboundEvent) == 1
    messages = db.session.scalars(select(Message)).all()
    assert [m.text for m in messages] == ["Привет"]
    assert messages[0].direction == "in" and messages[0].external_id == "42:101001"


def test_same_message_in_two_deliveries_is_one_message(ctx, telegram_channel):
    # two raw events (e.g. a webhook and a poll) carrying the same Telegram message
    receive(telegram_channel, "2001", telegram_update(2001, 42, "Zażółć gęślą jaźń", message_id=7),
            process="inline")
    receive(telegram_channel, "2002", telegram_update(2002, 42, "Zażółć gęślą jaźń", message_id=7),
            process="inline")
    assert count(InboundEvent) == 2
    assert count(Message) == 1


def test_customer_and_conversation_are_found_again(ctx, telegram_channel):
    receive(telegram_channel, "1", telegram_update(1, 42, "first", first_name="Anna"), process="inline")
    receive(telegram_channel, "2", telegram_update(2, 42, "second", first_name="Anna"), process="inline")
    receive(telegram_channel, "3", telegram_update(3, 77, "other person", first_name="Olga"),
            process="inline")
    assert count(Customer) == 2
    identity = db.session.scalar(select(Identity).where(Identity.value == "42"))
    assert identity.kind == "telegram"
    conversations = db.session.scalars(select(Conversation).order_by(Conversation.id)).all()
    assert len(conversations) == 2
    anna = conversations[0]
    assert anna.customer.name == "Anna"
    assert anna.unread_count == 2 and anna.last_message_preview == "second"
    assert anna.status == "open"


def test_message_after_resolution_opens_a_new_conversation(ctx, telegram_channel):
    receive(telegram_channel, "1", telegram_update(1, 42, "help"), process="inline")
    conversation = db.session.scalar(select(Conversation))
    conversation.status = "resolved"
    conversation.resolved_at = datetime.now(timezone.utc)
    db.session.commit()
    receive(telegram_channel, "2", telegram_update(2, 42, "again"), process="inline")
    rows = db.session.scalars(select(Conversation).order_by(Conversation.id)).all()
    assert [c.status for c in rows] == ["resolved", "open"]
    assert rows[0].customer_id == rows[1].customer_id
    assert db.session.scalar(select(Message.conversation_id).where(Message.text == "again")) == rows[1].id


def test_events_are_logged_with_increasing_ids(ctx, telegram_channel):
    receive(telegram_channel, "1", telegram_update(1, 42, "one"), process="inline")
    receive(telegram_channel, "2", telegram_update(2, 42, "two"), process="inline")
    events = db.session.scalars(select(Event).order_by(Event.id)).all()
    types = [e.type for e in events]
    assert types == ["customer.created", "conversation.created", "message.created",
                     "conversation.updated", "message.created"]
    assert [e.id for e in events] == sorted(e.id for e in events)
    assert events[2].payload["text"] == "one" and events[2].payload["direction"] == "in"
    assert events[1].payload["customer"]["identities"][0] == {
        "kind": "telegram", "value": "42", "verified": True, "reachable": True}


def test_failed_payload_is_kept_raw_and_replayed(ctx, telegram_channel):
    broken = {"update_id": 5, "message": {"message_id": 5, "chat": {"id": 42, "type": "private"},
                                          "from": {"id": 42, "is_bot": False, "first_name": "A"},
                                          "text": "no date"}}
    result = receive(telegram_channel, "5", broken, process="inline")
    event = db.session.get(InboundEvent, result.event_id)
    assert event.status == "failed"
    assert event.error and "date" in event.error
    assert event.payload == broken
    assert count(Message) == 0 and count(Customer) == 0
    # repair the stored payload (as an admin would after a connector fix) and replay it
    event.payload = telegram_update(5, 42, "repaired", message_id=5)
    db.session.commit()
    assert replay_failed() == {"processed": 1}
    assert db.session.get(InboundEvent, result.event_id).status == "processed"
    assert db.session.scalar(select(Message.text)) == "repaired"


def test_queued_processing_runs_in_the_worker(app, ctx, telegram_channel):
    receive(telegram_channel, "9", telegram_update(9, 42, "через очередь"), process="queue")
    run_jobs(app)
    db.session.expire_all()
    assert db.session.scalar(select(Message.text)) == "через очередь"
    assert db.session.scalar(select(InboundEvent.status)) == "processed"


def test_processing_an_event_twice_adds_nothing(ctx, telegram_channel):
    result = receive(telegram_channel, "1", telegram_update(1, 42, "once"), process="inline")
    assert process_event(result.event_id) == "processed"
    assert count(Message) == 1


def test_sweeper_picks_up_an_event_nobody_processed(app, ctx, telegram_channel):
    from app.outbox import sweep

    result = receive(telegram_channel, "1", telegram_update(1, 42, "orphan"), process="none")
    event = db.session.get(InboundEvent, result.event_id)
    event.created_at = datetime.now(timezone.utc) - timedelta(minutes=5)
    db.session.commit()
    assert sweep()["events"] == 1
    run_jobs(app)
    db.session.expire_all()
    assert db.session.scalar(select(Message.text)) == "orphan"


def test_sweeper_prunes_the_event_log(ctx, telegram_channel):
    from app.outbox import sweep

    receive(telegram_channel, "1", telegram_update(1, 42, "old"), process="inline")
    receive(telegram_channel, "2", telegram_update(2, 42, "new"), process="inline")
    old = db.session.scalars(select(Event).order_by(Event.id)).all()[:3]
    for event in old:
        event.created_at = datetime.now(timezone.utc) - timedelta(days=31)
    db.session.commit()
    assert sweep()["pruned"] == 3
    assert [e.type for e in db.session.scalars(select(Event).order_by(Event.id))] == [
        "conversation.updated", "message.created"]
