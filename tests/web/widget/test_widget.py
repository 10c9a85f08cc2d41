"""The site chat widget's transport and security: frame origin check, signed visitor tokens,
HMAC-verified site users, ingest through receive(), replies pushed through SENT_HOOKS,
catch-up after a reconnect, isolation between visitors, rate and size limits, uploads."""
from __future__ import annotations

import io
import re
import time
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from app.infra.models import Attachment, Customer, Identity, InboundEvent, Message
from app.infra.state import db
from connectors.webchat import user_hash
from tests.conftest import SCALE_OUT, run_jobs, wait_until

ORIGIN = "https://shop.example.com"
# Flask-SocketIO's test client cannot run with a message queue (Redis): socket tests run on
# the embedded default; test_scale_out_visitor_gets_the_workers_reply covers PostgreSQL + Redis
IN_PROCESS_SOCKETS = pytest.mark.parametrize("backend", ["sqlite"])
FIRST_PAGE = {"url": f"{ORIGIN}/coffee?utm_source=google&utm_medium=cpc&utm_campaign=autumn"
                     "&gclid=Cj0KCQ&yclid=777",
              "referrer": "https://www.google.com/", "title": "Coffee", "lang": "pl"}


@pytest.fixture(autouse=True)
def _fresh_state(request):
    from app.web import widget
    from app.infra.extensions import socketio

    if "backend" in request.fixturenames and request.getfixturevalue("backend") == "sqlite":
        # SocketIO.init_app keeps options of an earlier app in this process (a PostgreSQL +
        # Redis variant): an embedded app must not inherit its message queue
        for key in ("message_queue", "channel", "client_manager"):
            socketio.server_options.pop(key, None)

    for bucket in (widget.VISITOR_MESSAGES, widget.IP_MESSAGES, widget.IP_CONNECTS,
                   widget.VISITOR_EVENTS):
        bucket._buckets.clear()
    yield


@pytest.fixture
def webchat(ctx):
    from app.domain.channels import add_channel

    channel = add_channel("webchat", "Site chat", {"allowed_origins": ORIGIN,
                                                   "secret": "widget-secret-123"})
    db.session.commit()
    return channel


def set_settings(channel, **values) -> None:
    """Socket handlers share this thread's session and end it: work on a fresh copy."""
    from app.infra.models import Channel

    fresh = db.session.get(Channel, channel.id)
    fresh.settings = {**fresh.settings, **values}
    db.session.commit()


def frame_token_for(app, channel, origin=ORIGIN) -> str:
    """What /widget/frame hands an allowed page."""
    response = app.test_client().get(f"/widget/frame?c={channel.public_id}",
                                     headers={"Referer": f"{origin}/some/page"})
    assert response.status_code == 200, response.status_code
    return re.search(r'"frame": "([^"]+)"', response.get_data(as_text=True)).group(1)


class Visitor:
    """A widget connection through Flask-SocketIO's test client."""

    def __init__(self, app, frame: str, visitor: str | None = None, user=None, page=None,
                 after: int = 0, prechat=None):
        from app.infra.extensions import socketio

        db.session.commit()  # SQLite: no open transaction while the handler writes
        self.client = socketio.test_client(app, namespace="/widget", auth={
            "frame": frame, "visitor": visitor, "user": user, "page": page or FIRST_PAGE,
            "lang": "pl", "after": after, "prechat": prechat})
        self.session = None
        if self.client.is_connected("/widget"):
            self.session = self.events("session")[0]

    @property
    def connected(self) -> bool:
        return self.client.is_connected("/widget")

    def events(self, name: str) -> list[dict]:
        received = self.client.get_received("/widget")
        self._kept = getattr(self, "_kept", []) + received
        return [e["args"][0] for e in self._kept if e["name"] == name]

    def send(self, text: str, **extra) -> dict:
        db.session.commit()
        return self.client.emit("message", {"text": text, **extra}, namespace="/widget",
                                callback=True)

    def call(self, event: str, data=None) -> dict:
        db.session.commit()
        return self.client.emit(event, data or {}, namespace="/widget", callback=True)

    def close(self) -> None:
        if self.connected:
            self.client.disconnect(namespace="/widget")


def agent_reply(app, admin, message_id: int, text: str) -> Message:
    from app.usecases.outbox import enqueue_reply

    conversation = db.session.get(Message, message_id).conversation
    reply = enqueue_reply(db.session, conversation, admin, text)
    db.session.commit()
    run_jobs(app)
    db.session.expire_all()
    return db.session.get(Message, reply.id)


# --- the frame and the loader ----------------------------------------------------------------

def test_frame_is_served_only_to_allowed_origins(app, webchat):
    client = app.test_client()
    ok = client.get(f"/widget/frame?c={webchat.public_id}", headers={"Referer": f"{ORIGIN}/p?q=1"})
    assert ok.status_code == 200
    assert f"frame-ancestors 'self' {ORIGIN}" in ok.headers["Content-Security-Policy"]
    assert "script-src 'self'" in ok.headers["Content-Security-Policy"]
    assert ok.headers["Cache-Control"] == "no-store"
    assert 'id="tl-launcher"' in ok.get_data(as_text=True)
    by_origin_header = client.get(f"/widget/frame?c={webchat.public_id}", headers={"Origin": ORIGIN})
    assert by_origin_header.status_code == 200
    evil = client.get(f"/widget/frame?c={webchat.public_id}",
                      headers={"Referer": "https://shop.example.com.evil.net/"})
    assert evil.status_code == 403 and "frame-ancestors 'none'" in evil.headers["Content-Security-Policy"]
    assert client.get(f"/widget/frame?c={webchat.public_id}").status_code == 403  # no referrer
    assert client.get("/widget/frame?c=nope").status_code == 404
    assert client.get(f"/widget/frame?c={webchat.id}").status_code == 404  # the public id only
    loader = client.get("/widget.js")
    assert loader.status_code == 200 and loader.mimetype == "application/javascript"
    assert b"/widget/frame?c=" in loader.data


def test_any_origin_when_the_list_is_empty(app, ctx):
    from app.domain.channels import add_channel

    channel = add_channel("webchat", "Open chat", {})
    db.session.commit()
    response = app.test_client().get(f"/widget/frame?c={channel.public_id}",
                                     headers={"Referer": "https://anything.example/"})
    assert response.status_code == 200
    assert "frame-ancestors *" in response.headers["Content-Security-Policy"]


def test_settings_are_validated(ctx):
    from app.domain.channels import add_channel

    with pytest.raises(ValueError, match="allowed_origins"):
        add_channel("webchat", "Bad", {"allowed_origins": "shop.example.com"})
    with pytest.raises(ValueError, match="business_hours"):
        add_channel("webchat", "Bad2", {"business_hours": "weekdays all day"})
    channel = add_channel("webchat", "Good", {
        "allowed_origins": "https://A.example.com/path, http://b.example:8080",
        "business_hours": "mon-fri 09:00-18:00", "timezone": "Europe/Warsaw"})
    assert channel.settings["allowed_origins"] == "https://a.example.com http://b.example:8080"


# --- the socket: tokens, identity, origin -------------------------------------------------------

@IN_PROCESS_SOCKETS
def test_visitor_writes_and_a_reload_continues_the_thread(backend, app, webchat):
    frame = frame_token_for(app, webchat)
    first = Visitor(app, frame)
    assert first.connected and first.session["messages"] == []
    token = first.session["visitor"]
    ack = first.send("Dzień dobry, <b>czy</b> macie kawę bezkofeinową?", client_id="c1")
    assert ack["ok"] is True and ack["message"]["direction"] == "in"
    assert ack["message"]["client_id"] == "c1"
    # stored through the one door: a raw inbound event, then the message
    event = db.session.scalar(select(InboundEvent))
    assert event.status == "processed" and event.payload["page"]["url"] == FIRST_PAGE["url"]
    message = db.session.scalar(select(Message))
    assert message.text == "Dzień dobry, <b>czy</b> macie kawę bezkofeinową?"
    customer = db.session.get(Customer, message.customer_id)
    assert customer.source["utm"] == {"source": "google", "medium": "cpc", "campaign": "autumn"}
    assert customer.source["ad"] == {"gclid": "Cj0KCQ", "yclid": "777"}
    assert customer.source["referrer"] == "https://www.google.com/"
    identity = db.session.scalar(select(Identity).where(Identity.customer_id == customer.id))
    assert identity.kind == "webchat" and identity.verified
    # the same client id again (a resend after a dropped ack) is not a second message
    again = first.send("Dzień dobry, <b>czy</b> macie kawę bezkofeinową?", client_id="c1")
    # the one right answer: acknowledged as the message already stored, flagged duplicate
    assert again["ok"] is True and again["duplicate"] is True
    assert again["message"] == ack["message"] and again["message"]["id"] == message.id
    assert ack["duplicate"] is False
    assert db.session.scalar(select(func.count(Message.id))) == 1
    first.close()

    reload = Visitor(app, frame, visitor=token)
    assert [m["text"] for m in reload.session["messages"]] == [message.text]
    assert reload.session["visitor"].split(".")[0] == token.split(".")[0] or \
        reload.session["known"] is True
    reload.send("Jeszcze jedno pytanie", client_id="c2")
    db.session.expire_all()
    assert db.session.scalar(select(func.count(Customer.id))) == 1
    assert db.session.scalar(select(func.count(Message.id))) == 2

    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    stranger = Visitor(app, frame, visitor=forged)
    assert stranger.connected and stranger.session["messages"] == []
    assert stranger.session["known"] is False


@IN_PROCESS_SOCKETS
def test_forged_hash_is_refused_and_a_valid_one_verifies(backend, app, webchat):
    frame = frame_token_for(app, webchat)
    forged = Visitor(app, frame, user={"id": "42", "name": "Eve", "hash": user_hash("guess", "42")})
    assert not forged.connected
    no_hash = Visitor(app, frame, user={"id": "42", "name": "Eve"})
    assert not no_hash.connected
    good = Visitor(app, frame, user={"id": "42", "name": "Ola Nowak", "email": "ola@example.com",
                                     "hash": user_hash("widget-secret-123", "42")})
    assert good.connected and good.session["verified"] is True
    assert good.send("Mam pytanie o zamówienie")["ok"]
    kinds = {(i.kind, i.value, i.verified) for i in db.session.scalars(select(Identity))}
    visitor_id = next(v for k, v, _ in kinds if k == "webchat")
    assert ("site_user", "42", True) in kinds and ("webchat", visitor_id, True) in kinds
    customer = db.session.scalar(select(Customer))
    assert customer.name == "Ola Nowak"
    # the same browser after the site user logged out: a fresh anonymous visitor, who does
    # not inherit the logged-in user's thread
    logged_out = Visitor(app, frame, visitor=good.session["visitor"])
    assert logged_out.connected and logged_out.session["messages"] == []
    # the user on another device sees the thread (verified by the hash, not the visitor)
    phone = Visitor(app, frame, user={"id": "42", "hash": user_hash("widget-secret-123", "42")})
    assert [m["text"] for m in phone.session["messages"]] == ["Mam pytanie o zamówienie"]


@IN_PROCESS_SOCKETS
def test_require_verified_refuses_anonymous_visitors(backend, app, webchat):
    set_settings(webchat, **{"require_verified": "true"})
    frame = frame_token_for(app, webchat)
    assert not Visitor(app, frame).connected
    assert Visitor(app, frame, user={"id": "7", "hash": user_hash("widget-secret-123", "7")}).connected


@IN_PROCESS_SOCKETS
def test_disallowed_or_forged_frame_tokens_are_refused(backend, app, webchat):
    from app.web.widget import frame_token

    assert not Visitor(app, "not-a-token").connected
    with app.test_request_context():
        evil = frame_token(webchat, "https://evil.example")
    assert not Visitor(app, evil).connected
    # an origin removed from the list stops working for tokens already handed out
    frame = frame_token_for(app, webchat)
    set_settings(webchat, **{"allowed_origins": "https://other.example"})
    assert not Visitor(app, frame).connected
    # the frame's HTTP calls check the same
    response = app.test_client().post("/widget/upload", headers={"X-Threadline-Frame": frame},
                                      data={"file": (io.BytesIO(b"x"), "a.txt")})
    assert response.status_code == 403


# --- replies, catch-up, isolation ---------------------------------------------------------

@IN_PROCESS_SOCKETS
def test_agent_reply_reaches_the_visitor_live_and_after_a_reconnect(backend, app, admin, webchat):
    frame = frame_token_for(app, webchat)
    visitor = Visitor(app, frame)
    ack = visitor.send("Is the grinder in stock?")
    reply = agent_reply(app, admin, ack["message"]["id"], "Yes, <script>alert(1)</script> 3 left")
    assert reply.status == "sent"
    pushed = wait_until(lambda: [m for m in visitor.events("thread.message") if m["direction"] == "out"],
                        timeout=5, message="reply pushed")
    assert pushed[0]["text"] == "Yes, <script>alert(1)</script> 3 left"  # text, escaped by the widget
    assert pushed[0]["author"] == admin.name.split()[0] and "author_id" not in pushed[0]
    last_seen = pushed[0]["id"]

    # the visitor is gone while the agent answers twice; on reconnect it gets what it missed
    token = visitor.session["visitor"]
    visitor.close()
    agent_reply(app, admin, ack["message"]["id"], "We also have a new one")
    agent_reply(app, admin, ack["message"]["id"], "Anything else?")
    back = Visitor(app, frame, visitor=token, after=last_seen)
    assert [m["text"] for m in back.session["messages"]] == ["We also have a new one", "Anything else?"]
    # notes never reach the visitor
    from app.usecases.outbox import add_note

    add_note(db.session, db.session.get(Message, reply.id).conversation, admin, "internal only")
    db.session.commit()
    history = back.call("history", {"after": 0})
    assert "internal only" not in [m["text"] for m in history["messages"]]
    assert len(history["messages"]) == 4


@IN_PROCESS_SOCKETS
def test_read_receipts_mark_the_agents_message_read(backend, app, admin, webchat):
    frame = frame_token_for(app, webchat)
    visitor = Visitor(app, frame)
    ack = visitor.send("hello")
    reply = agent_reply(app, admin, ack["message"]["id"], "hi!")
    other = Visitor(app, frame)
    assert other.call("receipt", {"ids": [reply.id], "status": "read"})["changed"] == 0
    assert visitor.call("receipt", {"ids": [reply.id], "status": "read"})["changed"] == 1
    db.session.expire_all()
    assert db.session.get(Message, reply.id).status == "read"


@IN_PROCESS_SOCKETS
def test_two_visitors_never_see_each_others_threads(backend, app, admin, webchat):
    frame = frame_token_for(app, webchat)
    anna, boris = Visitor(app, frame), Visitor(app, frame)
    a = anna.send("Anna's secret order #1")
    b = boris.send("Boris asks about delivery")
    agent_reply(app, admin, a["message"]["id"], "Anna: your order ships today")
    agent_reply(app, admin, b["message"]["id"], "Boris: delivery takes 2 days")
    wait_until(lambda: len([m for m in boris.events("thread.message") if m["direction"] == "out"]) == 1,
               timeout=5)
    anna_texts = {m["text"] for m in anna.events("thread.message")}
    boris_texts = {m["text"] for m in boris.events("thread.message")}
    assert "Boris: delivery takes 2 days" not in anna_texts and "Boris asks about delivery" not in anna_texts
    assert "Anna: your order ships today" not in boris_texts and "Anna's secret order #1" not in boris_texts
    assert "Anna: your order ships today" in anna_texts
    history = boris.call("history", {"after": 0})["messages"]
    assert {m["text"] for m in history} == {"Boris asks about delivery", "Boris: delivery takes 2 days"}
    # a token for another channel is not a key to this one
    from app.domain.channels import add_channel
    from app.web.widget import visitor_token

    add_channel("webchat", "Second site", {})
    db.session.commit()
    with app.test_request_context():
        foreign = visitor_token("another-channel", anna.session["visitor"].split(".")[0])
    intruder = Visitor(app, frame, visitor=foreign)
    assert intruder.session["messages"] == []


# --- limits ------------------------------------------------------------------------------

@IN_PROCESS_SOCKETS
def test_socket_messages_are_rate_limited_and_size_limited(backend, app, webchat, monkeypatch):
    from app.web.widget import visitors

    # the buckets' clock stands still: a slow machine must not refill a token mid-test
    frozen = time.monotonic()
    monkeypatch.setattr(visitors, "time", SimpleNamespace(monotonic=lambda: frozen))
    frame = frame_token_for(app, webchat)
    visitor = Visitor(app, frame)
    assert visitor.send("x" * 4001) == {"ok": False, "error": "too_long", "limit": 4000}
    assert visitor.send("   ")["error"] == "empty"
    results = [visitor.send(f"message {n}")["ok"] for n in range(10)]
    assert results[:8] == [True] * 8 and results[8:] == [False, False]
    assert visitor.send("again")["error"] == "rate_limited"
    assert db.session.scalar(select(func.count(Message.id))) == 8
    # another visitor is not limited by the first one's bucket
    assert Visitor(app, frame).send("hi")["ok"] is True


@IN_PROCESS_SOCKETS
def test_files_have_a_size_limit_and_belong_to_their_visitor(backend, app, webchat):
    set_settings(webchat, **{"max_file_bytes": "1000"})
    frame = frame_token_for(app, webchat)
    visitor, other = Visitor(app, frame), Visitor(app, frame)
    client = app.test_client()
    headers = {"X-Threadline-Frame": frame, "X-Threadline-Visitor": visitor.session["visitor"]}
    big = client.post("/widget/upload", headers=headers,
                      data={"file": (io.BytesIO(b"x" * 1001), "big.bin")})
    assert big.status_code == 413
    no_visitor = client.post("/widget/upload", headers={"X-Threadline-Frame": frame},
                             data={"file": (io.BytesIO(b"x"), "a.txt")})
    assert no_visitor.status_code == 403
    cross_site = client.post("/widget/upload", headers={**headers, "Origin": ORIGIN},
                             data={"file": (io.BytesIO(b"x"), "a.txt")})
    assert cross_site.status_code == 403  # only the frame itself (Threadline's origin) calls
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 100
    ok = client.post("/widget/upload", headers=headers,
                     data={"file": (io.BytesIO(png), "photo.png", "image/png")})
    assert ok.status_code == 200, ok.json
    assert other.send("", upload=ok.json["upload"])["error"] == "bad_upload"
    ack = visitor.send("my photo", upload=ok.json["upload"])
    assert ack["ok"], ack
    attachment = db.session.scalar(select(Attachment))
    assert attachment.filename == "photo.png" and attachment.size == len(png) and attachment.path
    url = ack["message"]["attachments"][0]["url"]
    fetched = client.get(url)
    assert fetched.status_code == 200 and fetched.data == png and fetched.mimetype == "image/png"
    assert client.get(url[:-4] + "AAAA").status_code == 404
    assert visitor.send("", upload=ok.json["upload"])["error"] == "bad_upload"  # used once


@IN_PROCESS_SOCKETS
def test_http_endpoints_are_rate_limited_per_visitor(backend, app, webchat):
    frame = frame_token_for(app, webchat)
    visitor = Visitor(app, frame)
    client = app.test_client()
    headers = {"X-Threadline-Frame": frame, "X-Threadline-Visitor": visitor.session["visitor"]}
    codes = [client.post("/widget/upload", headers=headers,
                         data={"file": (io.BytesIO(b"hello"), "a.txt")}).status_code
             for _ in range(11)]
    assert codes[:10] == [200] * 10 and codes[10] == 429


# --- prechat, away, typing --------------------------------------------------------------------

@IN_PROCESS_SOCKETS
def test_prechat_form_and_away_status(backend, app, webchat):
    set_settings(webchat, **{"prechat": "email", "away_message": "Back at 9:00"})
    frame = frame_token_for(app, webchat)
    visitor = Visitor(app, frame)
    assert visitor.session["prechat_needed"] is True
    status = visitor.session["status"]
    assert status["away"] is True and status["agents_online"] is False  # no agent connected
    assert status["away_message"] == "Back at 9:00"
    assert visitor.call("prechat", {"name": "Jan"}) == {"ok": False, "error": "invalid", "field": "email"}
    assert visitor.call("prechat", {"name": "Jan", "email": "not an email"})["ok"] is False
    assert visitor.call("prechat", {"name": "Jan Kowalski", "email": "Jan@Example.com"})["ok"] is True
    visitor.send("Proszę o kontakt")
    customer = db.session.scalar(select(Customer))
    message = db.session.scalar(select(Message))
    assert customer.name == "Jan Kowalski"
    assert message.meta["contact_email"] == "jan@example.com"
    # a pre-chat email is weak evidence: no email identity is linked from it
    assert db.session.scalar(select(func.count(Identity.id)).where(Identity.kind == "email")) == 0
    again = Visitor(app, frame, visitor=visitor.session["visitor"])
    assert again.session["prechat_needed"] is False


@IN_PROCESS_SOCKETS
def test_prechat_phone_is_normalized_and_matches_the_known_customer(backend, app, webchat):
    from app.infra.models import MergeSuggestion

    known = Customer(name="Иван Петров")
    db.session.add(known)
    db.session.flush()
    db.session.add(Identity(customer_id=known.id, kind="phone", value="+79161234567",
                            verified=True))
    db.session.commit()
    known_id = known.id
    set_settings(webchat, prechat="phone")
    visitor = Visitor(app, frame_token_for(app, webchat))
    assert visitor.call("prechat", {"name": "Иван", "phone": "+7 916 123-45-67"})["ok"] is True
    assert visitor.send("Здравствуйте, где мой заказ?")["ok"] is True
    message = db.session.scalar(select(Message))
    assert message.meta["contact_phone"] == "+79161234567"
    (suggestion,) = db.session.scalars(select(MergeSuggestion))
    assert known_id in (suggestion.customer_id, suggestion.other_customer_id)
    assert {"reason": "handle mentioned by the customer", "handle": "phone:+79161234567"} \
        in suggestion.reasons
    # a pre-chat phone is weak evidence: the visitor's customer gets no phone identity
    assert db.session.scalar(select(func.count(Identity.id)).where(Identity.kind == "phone")) == 1


@pytest.mark.parametrize("typed, settings, app_region, expected", [
    ("+7 916 123-45-67", {}, None, "+79161234567"),
    ("8 (916) 123-45-67", {}, "RU", "+79161234567"),         # national, the app's region
    ("89161234567", {}, "RU", "+79161234567"),               # typed digits are no wa_id
    ("601 234 567", {"default_region": "PL"}, "RU", "+48601234567"),  # the channel's wins
    ("12-34", {}, "RU", None),                               # no phone: kept as typed, no match
])
def test_webchat_parse_normalizes_the_typed_phone(typed, settings, app_region, expected):
    from connectors.base import PHONE
    from connectors.webchat import WebchatConnector

    payload = {"visitor_id": "v1", "message_id": "v1:1", "text": "hi",
               "prechat": {"name": "Jan", "phone": typed}}
    if app_region:
        payload["default_region"] = app_region
    (record,) = WebchatConnector().parse({"secret": "s", **settings}, payload)
    phones = [h.value for h in record.evidence if h.kind == PHONE]
    assert phones == ([expected] if expected else [])
    assert record.meta["contact_phone"] == (expected or typed)


@pytest.mark.parametrize("raw, region, international, expected", [
    ("79161234567", None, True, "+79161234567"),        # Telegram contact, wa_id
    ("0048601234567", None, True, "+48601234567"),
    ("4915112345678", "DE", True, "+4915112345678"),     # a wa_id stays international
    ("79161234567", "DE", False, "+4979161234567"),      # typed in Germany: national
    ("8 916 123 45 67", "RU", True, "+79161234567"),
    ("8 916 123 45 67", "RU", False, "+79161234567"),
    # country code without "+": the national reading (RU) is no valid number, +48 is
    ("48601234567", "RU", False, "+48601234567"),
    ("48 601 234 567", "RU", False, "+48601234567"),
    ("48601234567", "RU", True, "+48601234567"),
    ("601 234 567", "PL", False, "+48601234567"),        # national, valid: stays national
    ("hello", "RU", True, None),
])
def test_one_phone_normalization_for_every_connector(raw, region, international, expected):
    from connectors.base import normalize_phone
    from connectors.telegram import normalize_phone as telegram_phone
    from connectors.whatsapp.parse import e164

    assert normalize_phone(raw, region, digits_are_international=international) == expected
    if region is None:
        assert telegram_phone(raw) == expected
    if international:
        assert e164(raw, region) == expected


def test_business_hours():
    from datetime import datetime, timezone

    from connectors.webchat import within_business_hours

    settings = {"business_hours": "mon-fri 09:00-18:00; sat 10:00-14:00", "timezone": "Europe/Warsaw"}
    monday_noon_utc = datetime(2026, 11, 2, 11, 0, tzinfo=timezone.utc)     # 12:00 in Warsaw
    monday_night_utc = datetime(2026, 11, 2, 18, 30, tzinfo=timezone.utc)   # 19:30
    sunday = datetime(2026, 11, 8, 11, 0, tzinfo=timezone.utc)
    saturday = datetime(2026, 11, 7, 10, 0, tzinfo=timezone.utc)            # 11:00
    assert within_business_hours(settings, monday_noon_utc)
    assert not within_business_hours(settings, monday_night_utc)
    assert not within_business_hours(settings, sunday)
    assert within_business_hours(settings, saturday)
    assert within_business_hours({}, sunday)


def test_demo_page_is_for_admins(app, admin, webchat):
    from app.domain.agents import create_agent

    create_agent("agent@example.com", "Marek", "correct horse battery", role="agent",
                 teams=["Support"])
    db.session.commit()
    from flask import g

    def fresh_g():  # the test's app context (and its g) outlives each request
        for key in ("_login_user", "csrf_token"):
            g.pop(key, None)

    client = app.test_client()
    anonymous = client.get("/widget/demo")
    assert anonymous.status_code in (302, 401)

    def login(email):
        fresh_g()
        c = app.test_client()
        page = c.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        assert c.post("/login", data={"email": email, "password": "correct horse battery",
                                      "csrf_token": token}).status_code == 302
        fresh_g()
        return c

    assert login("agent@example.com").get("/widget/demo").status_code == 403
    admin_client = login("admin@example.com")
    fresh_g()
    page = admin_client.get("/widget/demo")
    assert page.status_code == 200
    assert f'data-channel="{webchat.public_id}"' in page.get_data(as_text=True)


@pytest.mark.slow
@pytest.mark.parametrize("backend", SCALE_OUT)
def test_scale_out_visitor_gets_the_workers_reply(backend, app, admin, webchat, start_server):
    """PostgreSQL + Redis: the visitor's socket is on a web process, the reply is sent by an
    rq worker process, and reaches the visitor through the Redis message queue."""
    import socketio as socketio_client

    server = start_server()
    frame = frame_token_for(app, webchat)
    db.session.commit()
    events: list[tuple[str, dict]] = []
    visitor = socketio_client.Client(reconnection=False)
    visitor.on("session", lambda data: events.append(("session", data)), namespace="/widget")
    visitor.on("thread.message", lambda data: events.append(("message", data)), namespace="/widget")
    visitor.connect(server.url, namespaces=["/widget"], transports=["websocket"],
                    auth={"frame": frame, "page": FIRST_PAGE}, wait_timeout=10)
    try:
        wait_until(lambda: any(e == "session" for e, _ in events), timeout=10)
        ack = visitor.call("message", {"text": "Hello from the site", "client_id": "x1"},
                           namespace="/widget", timeout=10)
        assert ack["ok"] is True, ack
        db.session.commit()
        conversation = db.session.get(Message, ack["message"]["id"]).conversation
        from app.usecases.outbox import enqueue_reply

        enqueue_reply(db.session, conversation, admin, "Reply from the worker")
        db.session.commit()
        run_jobs(app)  # a real `threadline worker --burst` process
        pushed = wait_until(lambda: [d for e, d in events if e == "message" and d["direction"] == "out"],
                            timeout=10, message="reply through Redis")
        assert pushed[0]["text"] == "Reply from the worker"
    finally:
        visitor.disconnect()
    assert "Traceback" not in server.log()
