"""Campaigns through the real outbox to the local Telegram and Graph API fakes and aiosmtpd:
customers with one, two and three handles get exactly one message each, on their own
channel; opted-out customers none; replies and opt-out keywords are counted."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from itertools import count

import pytest
from sqlalchemy import func, select

from connectors.base import Handle, Inbound

from app.domain import optouts
from app.domain.channels import add_channel
from app.infra.models import CampaignRecipient, Message, OptOut
from app.infra.state import db
from app.usecases.ingest import apply_inbound
from tests.conftest import run_jobs
from tests.servers.smtp import RecordingSMTP
from tests.web.test_webhooks_whatsapp import graph, wa_channel  # noqa: F401

_ids = count(1)


@pytest.fixture
def smtp():
    server = RecordingSMTP().start()
    yield server
    server.stop()


@pytest.fixture
def channels(ctx, telegram_channel, wa_channel, smtp):  # noqa: F811
    email = add_channel("email", "Sklep mailbox", {
        "imap_host": "127.0.0.1", "imap_user": "u", "imap_password": "p", "imap_security": "none",
        **smtp.settings(), "from_address": "shop@shop.example"})
    db.session.commit()
    return {"telegram": telegram_channel, "whatsapp": wa_channel, "email": email}


def writes(channel, handle: Handle, text: str, name: str, also=(), ago: timedelta = timedelta(0)):
    """The customer writes (their handles joined by `also`); returns the customer id."""
    n = next(_ids)
    message = apply_inbound(db.session, channel, Inbound(
        external_id=f"t-{n}", sender=handle, also_known_as=tuple(also), sender_name=name,
        sent_at=datetime.now(timezone.utc) - ago, text=text,
        subject="Pytanie" if channel.kind == "email" else None))
    db.session.commit()
    return message.customer_id


def tg(user_id: int) -> Handle:
    return Handle("telegram", str(user_id))


def wa(number: str) -> Handle:
    return Handle("whatsapp", number)


def mail(address: str) -> Handle:
    return Handle("email", address)


def start_campaign(api, text="Cześć {first_name}! Nowa kolekcja już jest.", **extra) -> int:
    segment = api.post("/segments", json={"name": "Everyone", "filter": {}})
    assert segment.status_code == 201, segment.json
    created = api.post("/campaigns", json={"name": "Wiosna", "segment_id": segment.json["id"],
                                           "text": text, **extra})
    assert created.status_code == 201, created.json
    started = api.post(f"/campaigns/{created.json['id']}/start")
    assert started.status_code == 200, started.json
    return created.json["id"]


def test_each_customer_gets_exactly_one_message_on_their_own_channel(
        app, api, channels, telegram_api, graph, smtp):  # noqa: F811
    ch = channels
    one = writes(ch["telegram"], tg(501), "Привет", "Анна Смирнова")
    # two handles: wrote on Telegram, later by email -> email
    two = writes(ch["telegram"], tg(502), "hej", "Piotr Nowak")
    writes(ch["email"], mail("piotr@example.pl"), "Pytanie o zamówienie", "Piotr Nowak", also=[tg(502)])
    # three handles, last on WhatsApp (window open) -> WhatsApp
    three = writes(ch["email"], mail("zofia@example.pl"), "Dzień dobry", "Zofia Kowalska",
                   also=[tg(503), wa("48600100200")])
    writes(ch["telegram"], tg(503), "halo", "Zofia Kowalska")
    writes(ch["whatsapp"], wa("48600100200"), "Cześć", "Zofia Kowalska")
    # WhatsApp two days ago (window closed, no template) and an email handle -> email
    late = writes(ch["whatsapp"], wa("48600100300"), "Jest rozmiar 38?", "Marta Lis",
                  also=[mail("marta@example.pl")], ago=timedelta(days=2))
    # WhatsApp only, window closed, no template: nobody to write to
    closed = writes(ch["whatsapp"], wa("48600100400"), "?", "Ewa Bąk", ago=timedelta(days=3))
    # opted out by keyword on Telegram (their only channel)
    stop = writes(ch["telegram"], tg(504), "Здравствуйте", "Олег Петров")
    writes(ch["telegram"], tg(504), "СТОП", "Олег Петров")
    # opted out of email through the unsubscribe link
    unsub = writes(ch["email"], mail("jan@example.pl"), "Dzień dobry", "Jan Wójcik")
    db.session.add(OptOut(customer_id=unsub, channel_id=ch["email"].id, source="unsubscribe_link"))
    db.session.commit()
    run_jobs(app, timeout=120)   # the keyword is read from the committed event
    assert optouts.of_customer(db.session, stop)[0]["source"] == "keyword"
    db.session.commit()
    sent_before = len(telegram_api.calls("sendMessage"))

    campaign_id = start_campaign(api)
    run_jobs(app, timeout=120)

    texts = [c.params for c in telegram_api.calls("sendMessage")][sent_before:]
    assert sorted(int(p["chat_id"]) for p in texts) == [501]
    assert texts[0]["text"] == "Cześć Анна! Nowa kolekcja już jest."
    wa_sent = [m for m in graph.sent() if m.get("type") == "text"]
    assert [m["to"] for m in wa_sent] == ["48600100200"]
    assert sorted(r for m in smtp.received for r in m.rcpt_tos) == ["marta@example.pl",
                                                                  "piotr@example.pl"]
    email = message_from_bytes(smtp.received[0].raw, policy=policy.default)
    assert str(email["List-Unsubscribe"]).strip().startswith("<http") and "/unsubscribe/" in email["List-Unsubscribe"]
    assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # a campaign is sent on its own initiative: auto-generated, not an auto-reply (RFC 3834)
    for received in smtp.received:
        mailed = message_from_bytes(received.raw, policy=policy.default)
        assert mailed.get_all("Auto-Submitted") == ["auto-generated"]
        assert mailed["Precedence"] == "bulk" and mailed["List-Unsubscribe-Post"]
    # exactly one message row per customer who could be reached; none for the others
    per_customer = dict(db.session.execute(
        select(Message.customer_id, func.count()).where(Message.direction == "out")
        .group_by(Message.customer_id)).all())
    assert per_customer == {one: 1, two: 1, three: 1, late: 1}
    reasons = dict(db.session.execute(select(CampaignRecipient.customer_id,
                                             CampaignRecipient.reason)
                                      .where(CampaignRecipient.status == "skipped")).all())
    assert reasons == {closed: "window_closed", stop: "opted_out", unsub: "opted_out"}
    body = api.get(f"/campaigns/{campaign_id}").json
    assert body["status"] == "done" and body["progress"] == 1.0
    by_kind = {c["channel_kind"]: c for c in body["channels"]}
    assert by_kind["email"]["sent"] == 2 and by_kind["telegram"]["sent"] == 1
    assert by_kind["whatsapp"]["sent"] == 1 and body["skipped"] == {"window_closed": 1,
                                                                    "opted_out": 2}
    # a second start is refused; re-running the runner sends nothing more
    assert api.post(f"/campaigns/{campaign_id}/start").status_code == 409
    from app.usecases.campaigns import JOB
    from app.infra.state import queue

    queue.enqueue(JOB, campaign_id)
    run_jobs(app, timeout=120)
    assert db.session.scalar(select(func.count()).select_from(Message)
                             .where(Message.direction == "out")) == 4


def test_replies_count_and_are_marked_and_keywords_opt_out(app, api, channels, telegram_api):
    ch = channels
    anna = writes(ch["telegram"], tg(601), "Привет", "Анна")
    writes(ch["telegram"], tg(602), "Cześć", "Kasia")
    campaign_id = start_campaign(api, text="Скидка 20% для вас, {name}")
    run_jobs(app, timeout=120)
    writes(ch["telegram"], tg(601), "А на что скидка?", "Анна")
    writes(ch["telegram"], tg(602), "wypisz się", "Kasia")
    run_jobs(app, timeout=120)
    body = api.get(f"/campaigns/{campaign_id}").json
    telegram = body["channels"][0]
    assert telegram["replied"] == 2 and telegram["opted_out"] == 1
    reply = db.session.scalar(select(Message).where(Message.text == "А на что скидка?"))
    assert reply.meta["campaign_id"] == campaign_id and reply.customer_id == anna
    # the shop pushes Anna's order: the campaign counts a recipient who ordered
    assert body["ordered"] == 0
    from app.infra.models import Order

    db.session.add(Order(customer_id=anna, external_ref="SHOP-1", status="paid",
                         placed_at=datetime.now(timezone.utc)))
    db.session.commit()
    assert api.get(f"/campaigns/{campaign_id}").json["ordered"] == 1
    card = api.get(f"/customers/{db.session.scalar(select(Message.customer_id).where(Message.text == 'wypisz się'))}").json
    assert [(o["channel_id"], o["source"]) for o in card["opt_outs"]] == [(ch["telegram"].id, "keyword")]
    # the inbox's card beside the thread shows it too
    kasia = db.session.scalar(select(Message).where(Message.text == "wypisz się"))
    timeline = api.get(f"/conversations/{kasia.conversation_id}/timeline").json
    assert [(o["channel_name"], o["source"]) for o in timeline["card"]["opt_outs"]] == \
        [(ch["telegram"].name, "keyword")]


@pytest.mark.parametrize("text,opted", [
    ("СТОП", True), ("стоп", True), ("Отписаться!", True), ("STOP", True), ("unsubscribe", True),
    ("wypisz", True), ("Wypisz się.", True), ("WYPISZ SIĘ", True),
    ("стоп, а где заказ?", False), ("please stop calling", False), ("wypiszę", False)])
def test_opt_out_keywords_are_whole_messages_in_any_case(text, opted):
    assert optouts.is_opt_out_keyword(text) is opted


def test_a_blocked_bot_opts_the_user_out(app, api, channels, telegram_api):
    ch = channels
    customer = writes(ch["telegram"], tg(701), "Привет", "Анна")
    telegram_api.fail_next("sendMessage", 403, "Forbidden: bot was blocked by the user")
    campaign_id = start_campaign(api)
    run_jobs(app, timeout=120)
    assert [(o.customer_id, o.source, o.campaign_id) for o in db.session.scalars(select(OptOut))] \
        == [(customer, "blocked", campaign_id)]
    body = api.get(f"/campaigns/{campaign_id}").json
    assert body["channels"][0]["failed"] == 1 and body["channels"][0]["opted_out"] == 1


def test_a_running_campaign_cannot_change_its_text_and_cancel_stops_sends(app, api, channels,
                                                                          telegram_api):
    ch = channels
    for n in range(5):
        writes(ch["telegram"], tg(800 + n), "hi", f"Klient {n}")
    segment = api.post("/segments", json={"name": "All", "filter": {}}).json
    created = api.post("/campaigns", json={"name": "X", "segment_id": segment["id"],
                                           "text": "Hello"}).json
    # the runner is not run: the campaign stays "running" with nothing sent
    from app.infra.models import Campaign

    campaign = db.session.get(Campaign, created["id"])
    campaign.status = "running"
    db.session.commit()
    refused = api.patch(f"/campaigns/{created['id']}", json={"text": "Changed"})
    assert refused.status_code == 422 and "text" in refused.json["detail"]["json"]
    cancelled = api.post(f"/campaigns/{created['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    run_jobs(app, timeout=120)
    assert telegram_api.calls("sendMessage") == []


def test_bad_campaigns_are_refused_with_the_field(api, channels):
    segment = api.post("/segments", json={"name": "Nobody", "filter": {"tags": {"any": ["none"]}}}).json
    cases = [({"name": "", "segment_id": segment["id"], "text": "x"}, "name"),
             ({"name": "a", "segment_id": 999, "text": "x"}, "segment_id"),
             ({"name": "a", "segment_id": segment["id"], "text": "Hi {surname}"}, "text"),
             ({"name": "a", "segment_id": segment["id"], "text": "x",
               "variants": {"sms": {}}}, "variants.sms"),
             ({"name": "a", "segment_id": segment["id"], "text": "x",
               "variants": {"whatsapp": {"template": {"name": "promo", "parameter_count": 2,
                                                      "parameters": ["{name}"]}}}},
              "variants.whatsapp.template.parameters"),
             ({"name": "a", "segment_id": segment["id"], "text": "x",
               "channel_policy": {"order": ["fax"]}}, "channel_policy.order"),
             ({"name": "a", "segment_id": segment["id"], "text": "x",
               "schedule": {"at": "tomorrow"}}, "schedule.at")]
    for payload, field in cases:
        response = api.post("/campaigns", json=payload)
        assert response.status_code == 422 and field in response.json["detail"]["json"], \
            (payload, response.json)
    created = api.post("/campaigns", json={"name": "a", "segment_id": segment["id"], "text": "x"})
    empty = api.post(f"/campaigns/{created.json['id']}/start")
    assert empty.status_code == 422 and "segment_id" in empty.json["detail"]["json"]


def test_whatsapp_outside_the_window_gets_the_template_variant(app, api, channels, graph):  # noqa: F811
    ch = channels
    writes(ch["whatsapp"], wa("48600100500"), "Cześć", "Ewa Bąk", ago=timedelta(days=3))
    campaign_id = start_campaign(api, text="Nowa kolekcja!", variants={"whatsapp": {"template": {
        "name": "spring_sale", "language": "pl", "parameters": ["{first_name}"]}}})
    run_jobs(app, timeout=120)
    [sent] = graph.sent()
    assert sent["type"] == "template" and sent["template"]["name"] == "spring_sale"
    assert sent["template"]["components"][0]["parameters"] == [{"type": "text", "text": "Ewa"}]
    assert api.get(f"/campaigns/{campaign_id}").json["status"] == "done"


def test_a_scheduled_campaign_starts_from_the_sweep(app, api, channels, telegram_api):
    from app.infra.models import Campaign
    from app.usecases import campaigns

    writes(channels["telegram"], tg(901), "Привет", "Анна")
    segment = api.post("/segments", json={"name": "All", "filter": {}}).json
    at = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    created = api.post("/campaigns", json={"name": "Later", "segment_id": segment["id"],
                                           "text": "Доброе утро", "schedule": {"at": at}}).json
    started = api.post(f"/campaigns/{created['id']}/start").json
    assert started["status"] == "scheduled"
    assert campaigns.tick()["started"] == 0
    run_jobs(app, timeout=120)
    assert telegram_api.calls("sendMessage") == []
    assert campaigns.tick(now=datetime.now(timezone.utc) + timedelta(hours=2))["started"] == 1
    run_jobs(app, timeout=120)
    db.session.expire_all()
    assert db.session.get(Campaign, created["id"]).status == "done"
    assert [c.params["text"] for c in telegram_api.calls("sendMessage")] == ["Доброе утро"]


def test_pause_and_resume_still_send_each_customer_once(app, api, channels, telegram_api):
    from app.infra.models import Campaign

    for n in range(12):
        writes(channels["telegram"], tg(1000 + n), "hi", f"Klient {n}")
    app.config["THREADLINE"]["campaigns"]["telegram_rate"] = 4.0   # 3 s for all of them
    campaign_id = start_campaign(api)
    paused = api.post(f"/campaigns/{campaign_id}/pause")
    assert paused.status_code == 200 and paused.json["status"] == "paused"
    run_jobs(app, timeout=120)
    db.session.expire_all()
    assert db.session.get(Campaign, campaign_id).status == "paused"
    during = len(telegram_api.calls("sendMessage"))
    assert during < 12
    assert api.post(f"/campaigns/{campaign_id}/pause").status_code == 409
    assert api.post(f"/campaigns/{campaign_id}/resume").json["status"] == "running"
    run_jobs(app, timeout=120)
    chats = [int(c.params["chat_id"]) for c in telegram_api.calls("sendMessage")]
    assert sorted(chats) == [1000 + n for n in range(12)]
    assert api.get(f"/campaigns/{campaign_id}").json["status"] == "done"
