"""The durable outbox: replies are committed first, sent by a worker, retried, failed
visibly, and never lost when a worker dies."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

import pytest
from sqlalchemy import select

from app.usecases.ingest import receive
from app.infra.models import Conversation, Message
from app.infra.state import db
from tests.conftest import ROOT, SCALE_OUT, cli_env, run_jobs, telegram_update, threadline_cmd, wait_until


@pytest.fixture
def conversation(ctx, telegram_channel):
    receive(telegram_channel, "1", telegram_update(1, 4242, "Где мой заказ?"), process="inline")
    return db.session.scalar(select(Conversation))


def message_state(message_id: int) -> Message:
    db.session.expire_all()
    return db.session.get(Message, message_id)


def test_reply_is_sent_through_the_channel(app, api, conversation, telegram_api):
    response = api.post(f"/conversations/{conversation.id}/messages", json={"text": "Уже едет!"})
    assert response.status_code == 201, response.json
    body = response.json
    assert body["direction"] == "out" and body["status"] == "queued"
    assert body["channel_id"] == conversation.channel_id
    run_jobs(app)
    sent = telegram_api.calls("sendMessage")
    assert len(sent) == 1
    assert sent[0].params["chat_id"] in (4242, "4242") and sent[0].params["text"] == "Уже едет!"
    message = message_state(body["id"])
    assert message.status == "sent" and message.external_id.startswith("4242:")
    assert api.get(f"/conversations/{conversation.id}/messages").json["items"][0]["status"] == "sent"


def test_transient_error_is_retried_with_backoff(app, api, conversation, telegram_api):
    telegram_api.fail_next("sendMessage", 502, "Bad Gateway")
    response = api.post(f"/conversations/{conversation.id}/messages", json={"text": "retry me"})
    run_jobs(app)
    message = message_state(response.json["id"])
    assert message.status == "queued" and message.attempts == 1
    assert message.next_attempt_at is not None and "Bad Gateway" in message.error
    # the sweeper queues it again once it is due
    from app.wiring import sweep

    wait_until(lambda: sweep()["queued"] == 1, timeout=5, message="retry due")
    run_jobs(app)
    message = message_state(response.json["id"])
    assert message.status == "sent" and message.attempts == 2 and message.error is None
    assert len(telegram_api.calls("sendMessage")) == 2


def test_last_failed_attempt_marks_the_message_failed(app, api, conversation, telegram_api):
    from app.wiring import sweep

    for _ in range(3):  # max_attempts is 3 in the tests
        telegram_api.fail_next("sendMessage", 500, "Internal Server Error")
    response = api.post(f"/conversations/{conversation.id}/messages", json={"text": "doomed"})
    message_id = response.json["id"]
    run_jobs(app)
    for _ in range(2):
        wait_until(lambda: sweep()["queued"] == 1, timeout=5, message="retry due")
        run_jobs(app)
    listed = api.get(f"/conversations/{conversation.id}/messages").json["items"][0]
    assert listed["id"] == message_id
    assert listed["status"] == "failed"
    assert "Internal Server Error" in listed["error"] and "after 3 attempts" in listed["error"]
    # retryable from the API
    retried = api.post(f"/messages/{message_id}/retry")
    assert retried.status_code == 200 and retried.json["status"] == "queued"
    run_jobs(app)
    assert message_state(message_id).status == "sent"


def test_permanent_error_fails_at_once(app, api, conversation, telegram_api):
    telegram_api.fail_next("sendMessage", 403, "Forbidden: bot was blocked by the user")
    response = api.post(f"/conversations/{conversation.id}/messages", json={"text": "hi"})
    run_jobs(app)
    message = message_state(response.json["id"])
    assert message.status == "failed" and message.attempts == 1
    assert "blocked" in message.error


def test_note_is_never_sent(app, api, conversation, telegram_api):
    response = api.post(f"/conversations/{conversation.id}/notes", json={"text": "VIP, be nice"})
    assert response.status_code == 201 and response.json["direction"] == "note"
    run_jobs(app)
    assert telegram_api.calls("sendMessage") == []


def test_reply_to_a_channel_the_customer_never_used_is_refused(api, conversation):
    response = api.post(f"/conversations/{conversation.id}/messages",
                        json={"text": "hi", "channel_id": 999})
    assert response.status_code == 422
    assert "channel_id" in json.dumps(response.json)
    assert db.session.scalar(select(Message).where(Message.direction == "out")) is None


def test_empty_reply_is_refused_with_the_field(api, conversation):
    response = api.post(f"/conversations/{conversation.id}/messages", json={"text": ""})
    assert response.status_code == 422
    assert "text" in response.json["detail"]["json"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", SCALE_OUT)  # a separate worker process needs Redis
def test_worker_killed_mid_send_is_recovered(app, api, backend, conversation, telegram_api):
    """SIGKILL a worker while the channel holds the send; after a restart the message is
    sent and marked sent. Telegram cannot tell a repeat, so the channel saw it twice; the
    inbox shows one message."""
    config = app.config["THREADLINE"]
    telegram_api.hold("sendMessage")
    response = api.post(f"/conversations/{conversation.id}/messages", json={"text": "survive"})
    message_id = response.json["id"]
    env = cli_env(config)
    worker = subprocess.Popen(threadline_cmd("worker", "--no-sweeper"), cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        telegram_api.wait_for("sendMessage", 1, timeout=20)
        assert message_state(message_id).status == "sending"
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
        telegram_api.release("sendMessage")
    assert message_state(message_id).status == "sending"  # nobody finished it
    # the dead worker's lease lapses within seconds (jobs.lease), long before stale_after
    config["jobs"]["stale_after"] = 120.0
    from app.wiring import sweep

    wait_until(lambda: sweep()["revived"] == 1, timeout=15, message="the lease lapsed")
    restarted = subprocess.run(threadline_cmd("worker", "--burst"), cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=60)
    assert restarted.returncode == 0, restarted.stderr
    message = message_state(message_id)
    assert message.status == "sent" and message.attempts == 2
    assert len(db.session.scalars(select(Message).where(Message.direction == "out")).all()) == 1
    assert telegram_api.delivery_count(4242, "survive") == 2


def test_a_burst_of_replies_is_drained_in_batches_each_sent_once(app, api, conversation,
                                                                  telegram_api):
    app.config["THREADLINE"]["jobs"]["send_batch"] = 7
    texts = [f"Ответ {n}: zażółć" for n in range(30)]
    ids = []
    for text in texts:
        response = api.post(f"/conversations/{conversation.id}/messages", json={"text": text})
        assert response.status_code == 201, response.json
        ids.append(response.json["id"])
    run_jobs(app)
    sent = [call.params["text"] for call in telegram_api.calls("sendMessage")]
    assert sorted(sent) == sorted(texts)  # every reply once: none missing, none twice
    assert {message_state(i).status for i in ids} == {"sent"}
    assert {message_state(i).attempts for i in ids} == {1}


def test_the_drain_leaves_a_retry_that_is_not_due(app, api, conversation, telegram_api):
    from app.usecases.outbox import send_queued

    telegram_api.fail_next("sendMessage", 502, "Bad Gateway")
    first = api.post(f"/conversations/{conversation.id}/messages", json={"text": "первый"}).json
    run_jobs(app)
    assert message_state(first["id"]).status == "queued"  # waiting for its backoff
    message = message_state(first["id"])
    from datetime import timedelta

    from app.infra.models import utcnow

    message.next_attempt_at = utcnow() + timedelta(minutes=5)
    db.session.commit()
    second = api.post(f"/conversations/{conversation.id}/messages", json={"text": "второй"}).json
    run_jobs(app)
    assert send_queued() == 0
    assert message_state(second["id"]).status == "sent"
    assert message_state(first["id"]).status == "queued" and message_state(first["id"]).attempts == 1
    assert [c.params["text"] for c in telegram_api.calls("sendMessage")] == ["первый", "второй"]


def test_a_batch_goes_to_different_chats_side_by_side_and_in_order_within_each(
        app, api, telegram_channel, telegram_api):
    """Issue 15: the drain sends one claimed batch to different chats on several threads;
    one chat's replies still go one after another, in the order they were queued."""
    app.config["THREADLINE"]["jobs"].update(send_batch=30, send_parallel=3)
    chats = [5101, 5102, 5103]
    for n, chat in enumerate(chats):
        receive(telegram_channel, f"u{n}", telegram_update(900 + n, chat, "Вопрос"), process="inline")
    conversations = {c.customer.identities[0].value: c.id
                     for c in db.session.scalars(select(Conversation))}
    telegram_api.hold("sendMessage")   # every send waits: only parallel sends can pile up
    texts = {chat: [f"{chat}: ответ {k}" for k in range(4)] for chat in chats}
    for k in range(4):
        for chat in chats:
            response = api.post(f"/conversations/{conversations[str(chat)]}/messages",
                                json={"text": texts[chat][k]})
            assert response.status_code == 201, response.json
    db.session.commit()

    def drain() -> None:   # the drain in this process (with Redis no worker runs meanwhile)
        from app.usecases.outbox import send_queued

        with app.app_context():
            send_queued()
            db.session.remove()

    drainer = threading.Thread(target=drain)
    drainer.start()
    try:
        held = telegram_api.wait_for("sendMessage", count=3, timeout=20)
        assert {str(c.params["chat_id"]) for c in held[:3]} == {str(c) for c in chats}
    finally:
        telegram_api.release("sendMessage")
        drainer.join(60)
    run_jobs(app)
    calls = telegram_api.calls("sendMessage")
    for chat in chats:
        assert [c.params["text"] for c in calls if str(c.params["chat_id"]) == str(chat)] \
            == texts[chat]                                  # in order, each once
    assert len(calls) == 12
    assert {m.status for m in db.session.scalars(
        select(Message).where(Message.direction == "out"))} == {"sent"}
