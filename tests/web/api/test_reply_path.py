"""The API's reply path (issue 15): what a reply POST reads and writes, its answer and events,
and the drains it wakes after commit."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import event, select

from app.infra.models import Event, Message
from app.infra.state import db
from tests import inbox_helpers as h
from tests.conftest import SCALE_OUT, run_jobs

# SQL statements of one reply POST by an admin's token, no channel or handle picked:
# the token with its agent, the conversation with its customer and identities, the channel
# of the customer's latest message with its time, the conversation's update, the message,
# its two events (one INSERT on PostgreSQL), the outgoing webhooks' endpoints. SQLite adds
# its BEGIN IMMEDIATE, the search index's row for the message (a DELETE and an INSERT) and
# a second INSERT for the second event.
STATEMENTS = {"postgresql": 7, "sqlite": 11}


@pytest.fixture
def setup(ctx, admin, admin_token, telegram_api):
    support, sales = h.channels(telegram_api)
    return support, sales


def _latest_event(kind: str) -> Event:
    db.session.expire_all()
    return db.session.scalar(select(Event).where(Event.type == kind).order_by(Event.id.desc()))


def test_reply_answers_with_its_message_created_event(app, api, setup, telegram_api):
    support, sales = setup
    first = h.inbound(support, 801, "Где заказ?", "Вера")
    h.inbound(sales, 801, "И ещё вопрос", "Вера")   # the same person writes to the other bot
    from app.usecases.outbox import customer_channel_ids

    latest_channel = customer_channel_ids(db.session, first.customer_id)[0]
    db.session.commit()

    reply = api.post(f"/conversations/{first.conversation_id}/messages", json={"text": "Ответ"})
    assert reply.status_code == 201, reply.json
    assert reply.json["channel_id"] == latest_channel   # the latest inbound message's channel
    assert reply.json["status"] == "queued" and reply.json["text"] == "Ответ"
    created = _latest_event("message.created")
    assert created.payload == reply.json
    listed = api.get(f"/conversations/{first.conversation_id}/messages").json["items"][0]
    moving = ("status", "attempts", "sent_at", "external_id")   # the embedded sender may be at it
    assert {k: v for k, v in listed.items() if k not in moving} == \
        {k: v for k, v in reply.json.items() if k not in moving}
    updated = _latest_event("conversation.updated")
    assert updated.payload["id"] == first.conversation_id
    assert updated.payload["last_message_preview"] == "Ответ"
    assert [i["kind"] for i in updated.payload["customer"]["identities"]] == ["telegram"]
    run_jobs(app)
    assert telegram_api.wait_for("sendMessage")[-1].params["text"] == "Ответ"
    db.session.expire_all()
    assert db.session.get(Message, reply.json["id"]).status == "sent"


def test_reply_post_runs_its_budget_of_statements(app, api, setup):
    support, _sales = setup
    conversations = [h.inbound(support, 810 + i, f"вопрос {i}").conversation_id for i in range(3)]
    # the first POST of a process compiles and caches; count the next ones
    assert api.post(f"/conversations/{conversations[0]}/messages",
                    json={"text": "раз"}).status_code == 201
    engine = db.engine
    db.session.commit()
    statements: list[str] = []

    here = threading.get_ident()   # the test client serves the request on this thread

    def count(_conn, _cursor, statement, *_args):
        if threading.get_ident() == here:   # not the embedded jobs' threads
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        for conversation_id in conversations[1:]:
            reply = api.post(f"/conversations/{conversation_id}/messages", json={"text": "два"})
            assert reply.status_code == 201, reply.json
    finally:
        event.remove(engine, "before_cursor_execute", count)
    budget = STATEMENTS[engine.dialect.name]
    assert len(statements) == 2 * budget, "\n".join(statements)


@pytest.mark.parametrize("backend", SCALE_OUT)  # the wakes go to Redis only with rq
def test_reply_wakes_its_drains_in_one_redis_round_trip(app, api, setup, telegram_api):
    support, _sales = setup
    conversation_id = h.inbound(support, 820, "Вопрос").conversation_id
    run_jobs(app)   # nothing waiting: every wake flag is free again
    redis = app.extensions["threadline.queue"].redis
    single, batched = [], []
    real_set, real_pipeline = redis.set, redis.pipeline

    def spy_set(name, *args, **kwargs):
        single.append(name)
        return real_set(name, *args, **kwargs)

    def spy_pipeline(*args, **kwargs):
        pipe = real_pipeline(*args, **kwargs)
        real_execute = pipe.execute

        def execute(*a, **kw):
            batched.append([c[0][1] for c in pipe.command_stack if c[0][0] == "SET"])
            return real_execute(*a, **kw)

        pipe.execute = execute
        return pipe

    redis.set, redis.pipeline = spy_set, spy_pipeline
    try:
        reply = api.post(f"/conversations/{conversation_id}/messages", json={"text": "Ответ"})
    finally:
        redis.set, redis.pipeline = real_set, real_pipeline
    assert reply.status_code == 201, reply.json
    assert single == []   # no wake on its own round trip
    wakes = [keys for keys in batched if keys]   # (the others: rq enqueueing the woken jobs)
    assert len(wakes) == 1
    woken = sorted(str(key).rsplit(":", 1)[1] for key in wakes[0])
    assert woken == ["reports_rollup", "run_automation", "send_queued"]
    run_jobs(app)
    assert telegram_api.wait_for("sendMessage")[-1].params["text"] == "Ответ"
