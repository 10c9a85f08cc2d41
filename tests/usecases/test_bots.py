"""Outside bots (issue 18): an admin registers a bot; it holds new conversations of its
channels, gets the customer's messages as signed events at its URL (a local HTTP server
here), answers and hands off through /api/v1 with its own token; a bot that answers 500,
times out or is deleted hands the conversation to people with a note saying why.

Every test runs on SQLite (in-process jobs) and on PostgreSQL + Redis (rq worker
processes): messages come in through the real ingest door, replies leave through the real
outbox to the local fake Telegram API."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from app.domain.channels import add_channel
from app.infra.models import Agent, BotDelivery, Channel, Conversation, Event, Message, Team
from app.infra.state import db
from app.usecases import bots as bot_usecases
from app.usecases.distribution import set_availability, update_team_routing
from app.usecases.hooks import verify
from tests.conftest import run_jobs, wait_until
from tests.inbox_helpers import agent as make_agent
from tests.inbox_helpers import inbound


class BotServer:
    """An outside bot on 127.0.0.1: checks our signature, remembers each event, and answers
    `status` after `delay` seconds."""

    def __init__(self):
        self.secret = ""
        self.status = 200
        self.delay = 0.0
        self.events: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                valid = verify(outer.secret, self.headers["X-Threadline-Timestamp"], body,
                               self.headers["X-Threadline-Signature"])
                outer.events.append({"valid": valid, "body": json.loads(body),
                                     "delivery": self.headers["X-Threadline-Delivery"],
                                     "event": self.headers["X-Threadline-Event"]})
                if outer.delay:
                    time.sleep(outer.delay)
                status = outer.status if valid else 401
                try:
                    self.send_response(status)
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:   # we gave up waiting (time-out): the socket is gone
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def app_config(app_config):
    """The bot listens on 127.0.0.1: loopback targets allowed for these tests."""
    app_config["security"]["allow_private_webhook_urls"] = True
    return app_config


@pytest.fixture
def bot_server():
    server = BotServer()
    yield server
    server.close()


@pytest.fixture
def shop(ctx, telegram_api):
    channel = add_channel("telegram", "Shop bot", {
        "token": "123456:TEST-token", "mode": "webhook", "secret_token": "s3cret-token-value",
        "api_base_url": telegram_api.base_url, "public_url": "https://inbox.example.com"},
        teams=["Support"])
    db.session.commit()
    return channel.id


@pytest.fixture
def other_channel(ctx, telegram_api):
    channel = add_channel("telegram", "Sales bot", {
        "token": "654321:TEST-token", "mode": "webhook", "secret_token": "s3cret-token-value",
        "api_base_url": telegram_api.base_url, "public_url": "https://inbox.example.com"},
        teams=["Sales"])
    db.session.commit()
    return channel.id


def register(api, bot_server, shop, **extra):
    created = api.post("/bots", json={"name": "Order bot", "url": bot_server.url,
                                      "channel_ids": [shop], **extra})
    assert created.status_code == 201, created.json
    bot_server.secret = created.json["secret"]
    return created.json


class BotClient:
    """The outside bot's side of /api/v1: its Bearer token."""

    def __init__(self, app, token):
        self.client, self.headers = app.test_client(), {"Authorization": f"Bearer {token}"}

    def get(self, path):
        return self.client.get(f"/api/v1{path}", headers=self.headers)

    def post(self, path, json=None):
        return self.client.post(f"/api/v1{path}", json=json, headers=self.headers)

    def patch(self, path, json=None):
        return self.client.patch(f"/api/v1{path}", json=json, headers=self.headers)


def conversation(conversation_id: int) -> Conversation:
    db.session.expire_all()
    found = db.session.get(Conversation, conversation_id)
    db.session.commit()
    return found


def thread_notes(conversation_id: int) -> list[str]:
    db.session.expire_all()
    notes = list(db.session.scalars(select(Message.text).where(
        Message.conversation_id == conversation_id, Message.direction == "note")
        .order_by(Message.id)))
    db.session.commit()
    return notes


def events_of(type_: str) -> list[dict]:
    db.session.expire_all()
    found = [e.payload for e in db.session.scalars(select(Event).where(Event.type == type_)
                                                   .order_by(Event.id))]
    db.session.commit()
    return found


def deliver_until(app, predicate, timeout: float = 40.0):
    """Run jobs and the sweep (it queues due retries) until `predicate()` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run_jobs(app)
        value = predicate()
        if value:
            return value
        bot_usecases.sweep()
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {predicate}")


def test_the_bot_gets_the_signed_message_replies_and_hands_off(app, api, shop, telegram_api,
                                                               bot_server):
    registered = register(api, bot_server, shop)
    assert registered["token"].startswith("tl_") and registered["handled_by"] == \
        f"bot:{registered['id']}"
    assert "secret" not in api.get(f"/bots/{registered['id']}").json
    assert [b["name"] for b in api.get("/bots").json["items"]] == ["Order bot"]
    agent_id = make_agent("irina@example.com", "Ирина", ["Support"]).id
    support = db.session.scalar(select(Team).where(Team.name == "Support"))
    assert update_team_routing(db.session, support, {"distribution": "round_robin"}) == {}
    set_availability(db.session, db.session.get(Agent, agent_id), "online")
    db.session.commit()

    message = inbound(db.session.get(Channel, shop), 4242, "Где мой заказ 1001?")
    conversation_id = message.conversation_id
    assert conversation(conversation_id).handled_by == f"bot:{registered['id']}"
    deliver_until(app, lambda: bot_server.events)
    (event,) = bot_server.events
    assert event["valid"] and event["event"] == "message.created"
    body = event["body"]
    assert body["type"] == "message.created" and body["bot"] == f"bot:{registered['id']}"
    assert body["data"]["text"] == "Где мой заказ 1001?" and body["data"]["direction"] == "in"
    assert body["conversation"]["id"] == conversation_id
    # the bot holds it: the standard distribution did not give it to Ирина
    assert conversation(conversation_id).assignee_id is None

    bot = BotClient(app, registered["token"])
    reply = bot.post(f"/conversations/{conversation_id}/messages",
                     json={"text": "Заказ 1001 уже в пути."})
    assert reply.status_code == 201, reply.json
    assert reply.json["meta"]["bot"] == f"bot:{registered['id']}"
    assert reply.json["author_id"] == registered["agent_id"]
    labelled = bot.patch(f"/conversations/{conversation_id}", json={"labels": ["delivery"]})
    assert labelled.status_code == 200 and labelled.json["labels"] == ["delivery"]
    run_jobs(app)
    sent = telegram_api.wait_for("sendMessage")
    assert sent[-1].params["text"] == "Заказ 1001 уже в пути."

    # a second customer message reaches the bot too, as a new delivery
    inbound(db.session.get(Channel, shop),
            4242, "А можно курьером?")
    deliver_until(app, lambda: len(bot_server.events) == 2)
    assert bot_server.events[1]["delivery"] != bot_server.events[0]["delivery"]

    handed = bot.post(f"/conversations/{conversation_id}/handoff",
                      json={"reason": "the customer asks for a courier"})
    assert handed.status_code == 200, handed.json
    assert handed.json["handled_by"] is None and handed.json["assignee_id"] == agent_id
    assert thread_notes(conversation_id) == [
        "Handed off to people by bot Order bot: the customer asks for a courier"]
    assert events_of("bot.handoff")[-1] == {"bot": f"bot:{registered['id']}",
                                            "reason": "the customer asks for a courier",
                                            "conversation_id": conversation_id}
    # people hold it now: the bot's messages no longer go, and no event goes to the bot
    assert bot.post(f"/conversations/{conversation_id}/messages",
                    json={"text": "ещё я"}).status_code == 409
    inbound(db.session.get(Channel, shop),
            4242, "Спасибо")
    run_jobs(app)
    time.sleep(0.3)
    assert len(bot_server.events) == 2

    # an agent returns it to the bot; the bot is told, then resolves it
    returned = api.post(f"/conversations/{conversation_id}/return-to-bot")
    assert returned.status_code == 200 and returned.json["handled_by"] == \
        f"bot:{registered['id']}" and returned.json["assignee_id"] is None
    deliver_until(app, lambda: len(bot_server.events) == 3)
    assert bot_server.events[2]["event"] == "conversation.returned"
    resolved = bot.patch(f"/conversations/{conversation_id}", json={"status": "resolved"})
    assert resolved.status_code == 200 and resolved.json["status"] == "resolved"
    assert events_of("bot.resolved") == [{"bot": f"bot:{registered['id']}",
                                          "conversation_id": conversation_id}]


def test_a_bot_that_answers_500_hands_off_after_the_retries(app, api, shop, bot_server):
    registered = register(api, bot_server, shop)
    bot_server.status = 500
    message = inbound(db.session.get(Channel, shop), 5151, "Алло?")
    conversation_id = message.conversation_id
    found = deliver_until(app, lambda: conversation(conversation_id).handled_by is None)
    assert found
    assert len(bot_server.events) == bot_usecases.attempts_allowed() == 3
    assert len({e["delivery"] for e in bot_server.events}) == 1   # one delivery, retried
    assert thread_notes(conversation_id) == [
        "Handed off to people by bot Order bot: did not answer: HTTP 500"]
    assert events_of("bot.handoff") == [{"bot": f"bot:{registered['id']}",
                                         "reason": "did not answer: HTTP 500",
                                         "conversation_id": conversation_id}]
    delivery = db.session.scalar(select(BotDelivery))
    assert delivery.status == "failed" and [e["status_code"] for e in delivery.log] == [500] * 3
    db.session.commit()
    # with no distribution it waits, visibly, in its channel's team queue
    held = conversation(conversation_id)
    assert held.waiting_since is not None and held.team_id is not None


def test_a_bot_that_times_out_hands_off(app, api, shop, bot_server):
    register(api, bot_server, shop, timeout_seconds=1)
    bot_server.delay = 1.5
    message = inbound(db.session.get(Channel, shop), 6161, "Есть кто?")
    conversation_id = message.conversation_id
    deliver_until(app, lambda: conversation(conversation_id).handled_by is None, timeout=90)
    assert thread_notes(conversation_id) == [
        "Handed off to people by bot Order bot: did not answer: timeout"]
    delivery = db.session.scalar(select(BotDelivery))
    db.session.commit()
    # each attempt gave up after the bot's own time-out (1 s), not the 10 s default
    assert delivery.status == "failed" and len(delivery.log) == 3
    assert all("Timeout" in e["error"] and 900 <= e["ms"] < 3000 for e in delivery.log), \
        delivery.log


def test_a_deactivated_or_deleted_bot_gives_its_conversations_to_people(app, api, shop,
                                                                        bot_server):
    registered = register(api, bot_server, shop)
    first = inbound(db.session.get(Channel, shop), 7001, "Первый").conversation_id
    assert conversation(first).handled_by == f"bot:{registered['id']}"
    off = api.patch(f"/bots/{registered['id']}", json={"active": False})
    assert off.status_code == 200 and off.json["active"] is False
    assert conversation(first).handled_by is None
    assert thread_notes(first) == [
        "Handed off to people by bot Order bot: the bot was deactivated"]
    # its token no longer works; a new conversation is no longer the bot's
    assert BotClient(app, registered["token"]).get(f"/conversations/{first}").status_code == 401
    second = inbound(db.session.get(Channel, shop), 7002, "Второй").conversation_id
    assert conversation(second).handled_by is None

    assert api.patch(f"/bots/{registered['id']}", json={"active": True}).status_code == 200
    third = inbound(db.session.get(Channel, shop), 7003, "Третий").conversation_id
    assert conversation(third).handled_by == f"bot:{registered['id']}"
    assert api.delete(f"/bots/{registered['id']}").status_code == 204
    assert conversation(third).handled_by is None
    assert thread_notes(third) == ["Handed off to people by bot Order bot: the bot was deleted"]
    assert api.get("/bots").json["items"] == []
    assert BotClient(app, registered["token"]).get(f"/conversations/{third}").status_code == 401


def test_registration_is_for_admins_and_checks_its_input(app, api, shop, bot_server,
                                                         monkeypatch):
    agent_id = make_agent("marek@example.com", "Marek", ["Support"]).id
    from app.domain.agents import create_token

    token = create_token(db.session.get(Agent, agent_id), "t")
    db.session.commit()
    client = app.test_client()
    refused = client.post("/api/v1/bots", json={"name": "x", "url": bot_server.url,
                                                "channel_ids": [shop]},
                          headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 403
    assert client.get("/api/v1/bots", headers={"Authorization": f"Bearer {token}"}) \
        .status_code == 403

    def field(json):
        answer = api.post("/bots", json=json)
        assert answer.status_code == 422, answer.json
        return answer.json["detail"]["json"]

    assert set(field({"name": "x"})) == {"url", "channel_ids"}
    assert field({"name": "x", "url": "ftp://example.com", "channel_ids": [shop]}) == {
        "url": ["not an http(s) URL"]}
    assert field({"name": "x", "url": "https://example.com/bot", "channel_ids": [shop, 999]}) \
        == {"channel_ids": ["unknown channel(s): 999"]}
    assert field({"name": " ", "url": "https://example.com/bot", "channel_ids": [shop]}) == {
        "name": ["required"]}
    assert field({"name": "x", "url": "https://example.com/bot", "channel_ids": [shop],
                  "timeout_seconds": 0}) == {"timeout_seconds": ["a whole number of seconds "
                                                                 "from 1 to 60"]}
    from app.infra.state import config

    monkeypatch.setitem(config["security"], "allow_private_webhook_urls", False)
    assert "refused" in field({"name": "x", "url": "http://127.0.0.1:9/bot",
                               "channel_ids": [shop]})["url"][0]
    assert api.get("/bots").json["items"] == []
    assert api.patch("/bots/999", json={"active": False}).status_code == 404


def test_a_bot_token_reaches_only_its_channels_and_conversations(app, api, shop, other_channel,
                                                                 bot_server):
    registered = register(api, bot_server, shop)
    bot = BotClient(app, registered["token"])
    mine = inbound(db.session.get(Channel, shop), 8001, "Мой").conversation_id
    theirs = inbound(db.session.get(Channel, other_channel), 8002, "Чужой").conversation_id
    assert bot.get(f"/conversations/{mine}").status_code == 200
    assert bot.get(f"/conversations/{theirs}").status_code == 403
    assert bot.post(f"/conversations/{theirs}/messages", json={"text": "x"}).status_code == 403
    assert bot.post(f"/conversations/{theirs}/handoff", json={"reason": "x"}).status_code == 403
    assert bot.patch(f"/conversations/{theirs}", json={"labels": ["x"]}).status_code == 403
    listed = bot.get("/conversations?status=all").json["items"]
    assert [c["id"] for c in listed] == [mine]
    # nothing else of the API: customers, bots, settings, bulk changes, assigning
    assert bot.get("/customers?q=x").status_code == 403
    assert bot.get("/bots").status_code == 403
    assert bot.post("/conversations/bulk", json={"ids": [mine], "status": "pending"}) \
        .status_code == 403
    assert bot.patch(f"/conversations/{mine}", json={"assignee_id": 1}).status_code == 403
    assert bot.post(f"/conversations/{mine}/return-to-bot").status_code == 403
    # an agent of the channel may return a conversation only where a bot serves the channel
    assert api.post(f"/conversations/{theirs}/return-to-bot").status_code == 409
    assert bot.post(f"/conversations/{mine}/handoff", json={"reason": ""}).status_code == 422


def test_a_channel_taken_from_the_bot_gives_its_conversations_to_people(app, api, shop,
                                                                        other_channel,
                                                                        bot_server):
    registered = register(api, bot_server, shop, channel_ids=[shop, other_channel])
    kept = inbound(db.session.get(Channel, shop), 9001, "Мой").conversation_id
    taken = inbound(db.session.get(Channel, other_channel), 9002, "Чужой").conversation_id
    assert {conversation(kept).handled_by, conversation(taken).handled_by} == {
        f"bot:{registered['id']}"}
    bad = api.patch(f"/bots/{registered['id']}", json={"channel_ids": []})
    assert bad.status_code == 422 and "channel_ids" in bad.json["detail"]["json"]
    assert conversation(taken).handled_by == f"bot:{registered['id']}"   # nothing written
    changed = api.patch(f"/bots/{registered['id']}", json={"channel_ids": [shop]})
    assert changed.status_code == 200 and changed.json["channel_ids"] == [shop]
    assert conversation(taken).handled_by is None
    assert conversation(kept).handled_by == f"bot:{registered['id']}"
    assert thread_notes(taken) == [
        "Handed off to people by bot Order bot: the channel was taken from the bot"]


def test_an_unreachable_bot_hands_off(app, api, shop):
    from tests.conftest import free_port

    gone = BotServer()
    gone.close()   # nothing listens on its port any more
    created = api.post("/bots", json={"name": "Gone bot", "channel_ids": [shop],
                                      "url": f"http://127.0.0.1:{free_port()}/events"})
    assert created.status_code == 201
    conversation_id = inbound(db.session.get(Channel, shop), 9901, "Ау").conversation_id
    deliver_until(app, lambda: conversation(conversation_id).handled_by is None)
    assert thread_notes(conversation_id) == [
        "Handed off to people by bot Gone bot: did not answer: unreachable"]


def test_a_customer_writing_on_a_channel_the_bot_does_not_serve_goes_to_people(
        app, api, shop, other_channel, bot_server):
    register(api, bot_server, shop)
    conversation_id = inbound(db.session.get(Channel, shop), 9500, "Привет").conversation_id
    deliver_until(app, lambda: len(bot_server.events) == 1)
    # the same Telegram user writes to the Sales bot: the same open conversation, now there
    joined = inbound(db.session.get(Channel, other_channel), 9500, "Это снова я").conversation_id
    assert joined == conversation_id
    deliver_until(app, lambda: conversation(conversation_id).handled_by is None)
    assert thread_notes(conversation_id) == ["Handed off to people by bot Order bot: the "
                                             "customer wrote on a channel the bot does not serve"]
    assert len(bot_server.events) == 1


def test_a_disabled_channel_gives_its_bot_held_conversations_to_people(app, api, shop,
                                                                      bot_server):
    """Disabling a channel (DELETE of a channel with history) leaves no customer waiting on a
    bot that can no longer answer there: the conversation goes to people with a note."""
    registered = register(api, bot_server, shop)
    held = inbound(db.session.get(Channel, shop), 9301, "Где заказ?").conversation_id
    assert conversation(held).handled_by == f"bot:{registered['id']}"
    assert api.delete(f"/channels/{shop}").status_code in (200, 204)
    assert db.session.get(Channel, shop).active is False
    db.session.commit()
    run_jobs(app)
    assert conversation(held).handled_by is None
    assert thread_notes(held) == [
        "Handed off to people by bot Order bot: its channel was disabled"]
    assert [e["reason"] for e in events_of("bot.handoff")] == ["its channel was disabled"]
