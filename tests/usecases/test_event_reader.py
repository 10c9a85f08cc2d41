"""The readers of the committed event log read a batch set-wise (issue 15): what the batch
needs is loaded once, its events are handled in one savepoint, and when one of them fails
the batch is handled again event by event, so a failing event still fails alone: logged,
skipped, its writes and what it meant to publish dropped, the others applied once."""
from __future__ import annotations

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select

from app.infra.db import after_commit
from app.infra.models import AutomationCursor, Conversation, ConversationActivity, Event
from app.infra.state import db
from app.usecases import automation
from app.usecases.event_reader import EventReader
from tests.conftest import release_db, run_jobs
from tests.inbox_helpers import inbound


def test_a_failing_event_fails_alone_and_the_others_are_applied_once(ctx):
    release_db()
    start = db.session.scalar(select(Event.id).order_by(Event.id.desc()).limit(1)) or 0
    db.session.add_all([Event(type="reader.test", payload={"n": n}) for n in range(6)])
    db.session.commit()
    reader = EventReader("reader-test", "reader_test_job", what="reader test")
    prepared: list[list[int]] = []
    results: dict[int, object] = {}
    published: list[int] = []

    def prepare(session, events):
        prepared.append([e.payload["n"] for e in events])
        return []

    def handle(session, event):
        n = event.payload["n"]
        session.add(Event(type="reader.seen", payload={"n": n}))
        session.flush()
        after_commit(session, lambda: published.append(n))
        if n == 3:
            raise ValueError("poison")
        return n * 10

    def after_event(session, event, result):
        assert event.id not in results, "after_event twice for one event"
        results[event.id] = result

    read = reader.run(db.session, handle, 100, kinds=("reader.test",), prepare=prepare,
                      after_event=after_event)
    assert read == 6
    assert prepared == [[0, 1, 2, 3, 4, 5]]          # one load for the batch
    by_n = {db.session.get(Event, i).payload["n"]: r for i, r in results.items()}
    assert by_n == {0: 0, 1: 10, 2: 20, 3: None, 4: 40, 5: 50}
    seen = sorted(e.payload["n"] for e in db.session.scalars(
        select(Event).where(Event.type == "reader.seen", Event.id > start)))
    assert seen == [0, 1, 2, 4, 5]                   # once each; the poison's write undone
    assert sorted(published) == [0, 1, 2, 4, 5]      # the first, rolled-back try published nothing
    cursor = db.session.get(AutomationCursor, "reader-test")
    assert cursor.position >= max(e.id for e in db.session.scalars(
        select(Event).where(Event.type == "reader.test")))
    # read once: a second run finds nothing new
    assert reader.run(db.session, handle, 100, kinds=("reader.test",)) == 0
    db.session.commit()


@pytest.fixture
def shop(ctx, telegram_api):
    from app.domain.channels import add_channel

    channel = add_channel("telegram", "Shop bot", {
        "token": "123456:TEST-token", "mode": "webhook", "secret_token": "s3cret-token-value",
        "api_base_url": telegram_api.base_url, "public_url": "https://inbox.example.com"},
        teams=["Support"])
    db.session.commit()
    return channel.id


def _rule_labels_every_customer_message():
    from app.infra.models import AutomationRule

    db.session.add(AutomationRule(name="Seen", event="customer_message", conditions=[],
                                  actions=[{"type": "add_label", "label": "seen"}],
                                  enabled=True, position=0, options={}))
    db.session.commit()


def test_a_rule_failing_on_one_conversation_leaves_the_rest_of_the_batch_applied(
        app, shop, monkeypatch):
    from app.infra.models import Channel
    from app.infra.queues import InProcessQueue

    _rule_labels_every_customer_message()
    run_jobs(app)
    queue = app.extensions["threadline.queue"]
    if isinstance(queue, InProcessQueue):
        queue.stop()   # the three events are read in one batch, once the hook is in place
    ids = [inbound(db.session.get(Channel, shop), 7100 + n, f"вопрос {n}").conversation_id
           for n in range(3)]
    release_db()
    poison = ids[1]

    def hook(session, event):
        payload = event.payload if isinstance(event.payload, dict) else {}
        if event.type == "message.created" and payload.get("conversation_id") == poison:
            raise RuntimeError("poison")

    monkeypatch.setattr(automation, "EVENT_HOOKS", [hook])
    if isinstance(queue, InProcessQueue):
        queue.start()
    run_jobs(app)
    db.session.expire_all()
    labels = {i: db.session.get(Conversation, i).labels or [] for i in ids}
    assert labels == {ids[0]: ["seen"], ids[1]: [], ids[2]: ["seen"]}
    for i in ids:
        lines = [a.text for a in db.session.scalars(select(ConversationActivity).where(
            ConversationActivity.conversation_id == i, ConversationActivity.kind == "rule"))]
        assert lines == ([] if i == poison else ["labelled seen by rule 'Seen'"])
    db.session.commit()


def test_the_rules_read_a_batch_with_statements_that_do_not_grow_with_it(app, shop):
    """No rule, SLA policy or answer bot acts: reading 4 or 16 customers' first messages
    costs the same statements (the loads are one per kind, one savepoint per batch)."""
    from app.infra.models import Channel

    from app.infra.queues import InProcessQueue

    engine = app.extensions["threadline.db"].engine
    queue = app.extensions["threadline.queue"]
    counts = []
    for batch, first in ((4, 7200), (16, 7300)):
        run_jobs(app)
        if isinstance(queue, InProcessQueue):
            queue.stop()   # the rules' job is run below, by the test (with rq: not until run_jobs)
        for n in range(batch):
            inbound(db.session.get(Channel, shop), first + n, f"вопрос {n}")
        release_db()
        statements: list[str] = []

        def count(_conn, _cursor, statement, *_args):
            statements.append(statement)

        sa_event.listen(engine, "before_cursor_execute", count)
        try:
            automation.run_automation()
        finally:
            sa_event.remove(engine, "before_cursor_execute", count)
        db.session.commit()
        read = db.session.get(AutomationCursor, "rules")
        assert read.position >= db.session.scalar(select(Event.id).order_by(
            Event.id.desc()).limit(1))
        db.session.commit()
        counts.append(len(statements))
        if isinstance(queue, InProcessQueue):
            queue.start()
    run_jobs(app)
    assert counts[0] == counts[1], counts
