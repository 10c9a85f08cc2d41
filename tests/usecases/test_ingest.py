"""The one ingest door: dedupe, customers, conversations, failures and replay."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from app.usecases.ingest import process_event, receive, replay_failed
from app.infra.models import Conversation, Customer, Event, Identity, InboundEvent, Message
from app.infra.state import db
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
    from app.wiring import sweep

    result = receive(telegram_channel, "1", telegram_update(1, 42, "orphan"), process="none")
    event = db.session.get(InboundEvent, result.event_id)
    event.created_at = datetime.now(timezone.utc) - timedelta(minutes=5)
    db.session.commit()
    assert sweep()["events"] == 1
    run_jobs(app)
    db.session.expire_all()
    assert db.session.scalar(select(Message.text)) == "orphan"


def test_sweeper_prunes_the_event_log(ctx, telegram_channel):
    from app.wiring import sweep

    receive(telegram_channel, "1", telegram_update(1, 42, "old"), process="inline")
    receive(telegram_channel, "2", telegram_update(2, 42, "new"), process="inline")
    old = db.session.scalars(select(Event).order_by(Event.id)).all()[:3]
    for event in old:
        event.created_at = datetime.now(timezone.utc) - timedelta(days=31)
    db.session.commit()
    assert sweep()["pruned"] == 3
    assert [e.type for e in db.session.scalars(select(Event).order_by(Event.id))] == [
        "conversation.updated", "message.created"]


# --- the batched drain (`process_received`) ------------------------------------------------

def _thread_texts() -> dict[str, list[str]]:
    rows = db.session.execute(
        select(Identity.value, Message.text).join(Message.conversation)
        .join(Identity, Identity.customer_id == Conversation.customer_id)
        .where(Identity.kind == "telegram").order_by(Message.id)).all()
    texts: dict[str, list[str]] = {}
    for sender, text in rows:
        texts.setdefault(sender, []).append(text)
    return texts


def test_drain_applies_events_in_batches_in_order(app, ctx, telegram_channel):
    from app.usecases.ingest import process_received

    app.config["THREADLINE"]["jobs"]["ingest_batch"] = 7
    for n in range(30):  # 10 senders, 3 messages each, interleaved
        receive(telegram_channel, str(n), telegram_update(n, 100 + n % 10, f"Zażółć {n // 10} ёж"),
                process="none")
    # a full batch wakes another drain (another worker joins in): take what this one took
    # plus whatever the woken jobs did
    assert process_received() >= 7
    run_jobs(app)
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).where(InboundEvent.status == "processed")) == 30
    assert count(Customer) == 10 and count(Conversation) == 10
    texts = _thread_texts()
    assert texts == {f"{100 + s}": [f"Zażółć {k} ёж" for k in range(3)] for s in range(10)}
    assert process_received() == 0  # nothing left, nothing applied twice
    assert count(Message) == 30


def test_one_unparsable_event_fails_alone_inside_a_batch(ctx, telegram_channel):
    from app.usecases.ingest import process_received

    receive(telegram_channel, "1", telegram_update(1, 42, "до"), process="none")
    broken = receive(telegram_channel, "2", {"update_id": 2, "message": {"message_id": 2}},
                     process="none")
    receive(telegram_channel, "3", telegram_update(3, 42, "после"), process="none")
    assert process_received() == 3
    db.session.expire_all()
    assert db.session.get(InboundEvent, broken.event_id).status == "failed"
    assert db.session.get(InboundEvent, broken.event_id).attempts == 1
    assert db.session.scalars(select(Message.text).order_by(Message.id)).all() == ["до", "после"]


def test_a_batch_that_fails_while_applying_falls_back_to_one_by_one(ctx, telegram_channel,
                                                                     monkeypatch):
    from app.usecases import ingest

    def explode(session, channel, inbound, message):
        if inbound.text == "boom":
            raise RuntimeError("hook exploded")

    monkeypatch.setattr(ingest, "AFTER_INBOUND", [*ingest.AFTER_INBOUND, explode])
    for n, text in enumerate(["раз", "boom", "два"]):
        receive(telegram_channel, str(n), telegram_update(n, 42, text), process="none")
    assert ingest.process_received() == 3
    db.session.expire_all()
    statuses = dict(db.session.execute(select(InboundEvent.external_id, InboundEvent.status)).all())
    assert statuses == {"0": "processed", "1": "failed", "2": "processed"}
    failed = db.session.scalar(select(InboundEvent).where(InboundEvent.status == "failed"))
    assert "hook exploded" in failed.error and failed.attempts == 1
    assert db.session.scalars(select(Message.text).order_by(Message.id)).all() == ["раз", "два"]
    assert count(Customer) == 1 and count(Conversation) == 1


def test_webhook_bursts_wake_one_drain_job(app, ctx, telegram_channel):
    from app.infra.queues import RQQueue

    queue = app.extensions["threadline.queue"]
    for n in range(40):
        receive(telegram_channel, str(n), telegram_update(n, 500 + n % 4, f"сообщение {n}"),
                process="queue")
    if isinstance(queue, RQQueue):
        # jobs wait for the worker: the 40 wakes coalesced (a 2 s flag: at most a few jobs)
        assert queue.queue.count <= 3
    run_jobs(app)
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).where(InboundEvent.status == "processed")) == 40
    assert count(Conversation) == 4 and count(Message) == 40


def test_the_drain_reads_a_channel_and_a_customer_once_per_batch(app, ctx, telegram_channel):
    """Issue 15: the session's identity map holds objects weakly; the drain keeps a batch's
    channels, customers and identities, so ten messages of two senders read the channel
    once and each customer once."""
    from sqlalchemy import event

    from app.usecases.ingest import process_received

    for n in range(2):   # the senders exist already: their customers are read, not made
        receive(telegram_channel, f"w{n}", telegram_update(n, 700 + n, "привет"), process="inline")
    for n in range(10):
        receive(telegram_channel, str(n), telegram_update(10 + n, 700 + n % 2, f"сообщение {n}"),
                process="none")
    db.session.remove()
    seen: list[str] = []
    engine = app.extensions["threadline.db"].engine
    drain_thread = threading.get_ident()

    def listen(_conn, _cursor, statement, *_args):
        # without Redis the jobs the drain's events wake (rules, bots) run in worker threads
        # of this process and read channels too; only the drain's own statements count here
        if threading.get_ident() == drain_thread:
            seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", listen)
    try:
        assert process_received() == 10
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    assert len([s for s in seen if s.startswith("SELECT channels.")]) == 1, seen
    # set-based (issue 15): both customers in one query, and no statement per message
    assert len([s for s in seen if s.startswith("SELECT customers.")]) == 1, seen
    writes = [s for s in seen if s.startswith(("INSERT INTO messages", "INSERT INTO events",
                                                 "UPDATE conversations"))]
    if app.extensions["threadline.db"].engine.dialect.name == "postgresql":
        # one multi-row INSERT of the ten messages, one of their events, one UPDATE
        # (executemany) of the two conversations
        assert len(writes) == 3, writes
    db.session.expire_all()
    assert count(Message) == 12 and count(Conversation) == 2
    assert db.session.scalar(select(func.count()).where(InboundEvent.status == "processed")) == 12
