"""One person across channels: exact handles link, evidence suggests, merge and unmerge
restore every row exactly, all audited."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import func, select

from app.usecases.ingest import apply_records
from app.infra.models import (
    AuditLog,
    Channel,
    Conversation,
    Customer,
    Deal,
    Event,
    Identity,
    MergeSuggestion,
    Message,
    Note,
    Order,
)
from app.infra.state import db
from connectors.base import Handle, Inbound

WA_ID = "79161234567"
PHONE = "+79161234567"


def _channel(kind: str, name: str) -> Channel:
    channel = Channel(kind=kind, name=name, settings={})
    db.session.add(channel)
    db.session.commit()
    return channel


def _inbound(channel: Channel, external_id: str, sender: Handle, text: str, **kw) -> None:
    apply_records(db.session, channel, [Inbound(
        external_id=external_id, sender=sender, text=text,
        sent_at=datetime.now(timezone.utc), **kw)])
    db.session.commit()


def _customer_of(kind: str, value: str) -> Customer:
    identity = db.session.scalar(select(Identity).where(Identity.kind == kind,
                                                        Identity.value == value))
    return identity.customer


def test_same_person_on_whatsapp_and_telegram_is_one_customer(ctx, api):
    wa, tg = _channel("whatsapp", "WA"), _channel("telegram", "TG")
    # WhatsApp: the wa_id is a phone, so the connector adds the phone as a verified handle
    _inbound(wa, "wamid.1", Handle("whatsapp", WA_ID), "Здравствуйте, заказ 1042",
             sender_name="Иван Петров", also_known_as=(Handle("phone", PHONE),))
    # Telegram: the same person shares their own contact (verified phone)
    _inbound(tg, "tg.1", Handle("telegram", "5551"), "Вот мой номер", sender_name="Ivan",
             content_type="contact", also_known_as=(Handle("phone", PHONE),))
    assert db.session.scalar(select(func.count()).select_from(Customer)) == 1
    ivan = _customer_of("phone", PHONE)
    assert {(i.kind, i.value) for i in ivan.identities} == {
        ("whatsapp", WA_ID), ("phone", PHONE), ("telegram", "5551")}
    assert db.session.scalar(select(func.count()).select_from(MergeSuggestion)) == 0

    # Someone else shares Ivan's contact card: evidence, not identity -> a suggestion
    _inbound(tg, "tg.2", Handle("telegram", "7770"), "Contact: Ivan, +7 916 123-45-67",
             sender_name="Мария", content_type="contact",
             evidence=(Handle("phone", PHONE, verified=False),))
    maria = _customer_of("telegram", "7770")
    assert maria.id != ivan.id
    assert db.session.scalar(select(func.count()).select_from(Customer)) == 2

    listed = api.get("/merge-suggestions").json
    assert len(listed["items"]) == 1, listed
    suggestion = listed["items"][0]
    assert {suggestion["customer"]["id"], suggestion["other_customer"]["id"]} == {ivan.id, maria.id}
    assert suggestion["score"] == 60
    assert suggestion["reasons"][0]["handle"] == f"phone:{PHONE}"

    # the agent knows better: reject (audited); the queue is empty
    rejected = api.post(f"/merge-suggestions/{suggestion['id']}/reject",
                        json={"reason": "Мария is his wife"})
    assert rejected.status_code == 200 and rejected.json["status"] == "rejected"
    assert api.get("/merge-suggestions").json["items"] == []
    audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "merge_suggestion.reject"))
    assert audit.details["reason"] == "Мария is his wife" and audit.actor_id is not None
    again = api.post(f"/merge-suggestions/{suggestion['id']}/accept", json={})
    assert again.status_code == 409


def test_accepting_a_suggestion_merges(ctx, api):
    wa, tg = _channel("whatsapp", "WA"), _channel("telegram", "TG")
    _inbound(wa, "wamid.1", Handle("whatsapp", WA_ID), "Привет", sender_name="Ivan",
             also_known_as=(Handle("phone", PHONE),))
    _inbound(tg, "tg.1", Handle("telegram", "42"), "my number is +7 916 123 45 67",
             sender_name="Ivan P", evidence=(Handle("phone", PHONE, verified=False),))
    (suggestion,) = api.get("/merge-suggestions").json["items"]
    older = min(suggestion["customer"]["id"], suggestion["other_customer"]["id"])
    accepted = api.post(f"/merge-suggestions/{suggestion['id']}/accept",
                        json={"choose": {"name": "other"}, "reason": "same phone"})
    assert accepted.status_code == 201, accepted.json
    assert accepted.json["target_id"] == older
    db.session.expire_all()
    kept = db.session.get(Customer, older)
    assert kept.name == "Ivan P"
    assert {i.kind for i in kept.identities} == {"whatsapp", "phone", "telegram"}
    # the next Telegram message lands on the kept customer
    _inbound(tg, "tg.2", Handle("telegram", "42"), "ещё вопрос")
    message = db.session.scalar(select(Message).where(Message.external_id == "tg.2"))
    assert message.customer_id == older
    assert db.session.get(MergeSuggestion, suggestion["id"]).status == "accepted"


def _state() -> dict[str, list]:
    """Every row a merge touches, table by table."""
    return {
        "customers": [(c.id, c.name, c.company, c.owner_id, c.source, c.tags, c.custom_fields,
                       c.merged_into_id) for c in db.session.scalars(select(Customer).order_by(Customer.id))],
        "identities": list(db.session.execute(select(Identity.id, Identity.customer_id, Identity.kind,
                                                     Identity.value).order_by(Identity.id))),
        "conversations": list(db.session.execute(select(
            Conversation.id, Conversation.customer_id, Conversation.status,
            Conversation.resolved_at).order_by(Conversation.id))),
        "messages": list(db.session.execute(select(Message.id, Message.customer_id,
                                                   Message.conversation_id).order_by(Message.id))),
        "notes": list(db.session.execute(select(Note.id, Note.customer_id, Note.text).order_by(Note.id))),
        "orders": list(db.session.execute(select(Order.id, Order.customer_id, Order.total).order_by(Order.id))),
        "deals": list(db.session.execute(select(Deal.id, Deal.customer_id, Deal.stage).order_by(Deal.id))),
    }


def test_merge_then_unmerge_restores_every_row(ctx, api, admin):
    wa, mail = _channel("whatsapp", "WA"), _channel("email", "Mail")
    _inbound(wa, "w1", Handle("whatsapp", WA_ID), "Hi", sender_name="Ivan",
             also_known_as=(Handle("phone", PHONE),))
    _inbound(wa, "w2", Handle("whatsapp", WA_ID), "Are you there?")
    _inbound(mail, "<m1@x>", Handle("email", "ivan@acme.example"), "Invoice please",
             sender_name="Ivan Petrov")
    a, b = _customer_of("phone", PHONE), _customer_of("email", "ivan@acme.example")
    for field in ({"key": "tier", "label": "Tier", "type": "choice", "choices": ["gold", "silver"]},
                  {"key": "inn", "label": "INN", "type": "text"}):
        assert api.post("/custom-fields", json=field).status_code == 201
    assert api.patch(f"/customers/{a.id}", json={"company": "ACME", "tags": ["vip"],
                                                 "custom_fields": {"tier": "gold"}}).status_code == 200
    assert api.patch(f"/customers/{b.id}", json={"company": "ACME Ltd", "tags": ["b2b"],
                                                 "owner_id": admin.id,
                                                 "custom_fields": {"tier": "silver", "inn": "7701"}}
                     ).status_code == 200
    assert api.post("/notes", json={"customer_id": b.id, "text": "called"}).status_code == 201
    assert api.post("/orders", json={"customer_id": b.id, "external_ref": "o-1", "total": "10.50",
                                     "currency": "eur"}).status_code == 201
    assert api.post("/deals", json={"customer_id": b.id, "external_ref": "d-1",
                                    "title": "Pilot", "amount": "1000"}).status_code == 201
    assert api.post("/orders", json={"customer_id": a.id, "external_ref": "o-2",
                                     "total": "5"}).status_code == 201
    db.session.expire_all()
    before = _state()

    preview = api.post(f"/customers/{a.id}/merge/preview", json={"other_id": b.id})
    assert preview.status_code == 200, preview.json
    conflicts = {c["field"]: (c["this"], c["other"]) for c in preview.json["conflicts"]}
    assert conflicts == {"name": ("Ivan", "Ivan Petrov"), "company": ("ACME", "ACME Ltd"),
                         "custom_fields.tier": ("gold", "silver")}
    assert preview.json["moves"] == {"identities": 1, "conversations": 1, "notes": 1,
                                     "orders": 1, "deals": 1, "messages": 1}
    bad = api.post(f"/customers/{a.id}/merge", json={"other_id": b.id, "choose": {"name": "both"}})
    assert bad.status_code == 422 and "choose" in bad.json["detail"]["json"]

    merged = api.post(f"/customers/{a.id}/merge", json={
        "other_id": b.id, "choose": {"name": "other", "custom_fields.tier": "other"},
        "reason": "same person, two channels"})
    assert merged.status_code == 201, merged.json
    db.session.expire_all()
    after = _state()
    assert {row[1] for row in after["identities"]} == {a.id}
    assert {row[1] for row in after["messages"]} == {a.id}
    assert {row[1] for table in ("notes", "orders", "deals") for row in after[table]} == {a.id}
    # both had an open conversation: the merged-in one is resolved (one open per customer)
    assert sorted(row[2] for row in after["conversations"]) == ["open", "resolved"]
    kept = db.session.get(Customer, a.id)
    assert (kept.name, kept.company, kept.owner_id) == ("Ivan Petrov", "ACME", admin.id)
    assert kept.custom_fields == {"tier": "silver", "inn": "7701"}
    assert kept.tags == ["vip", "b2b"]
    assert db.session.get(Customer, b.id).merged_into_id == a.id
    card = api.get(f"/customers/{a.id}").json
    assert {i["kind"] for i in card["identities"]} == {"whatsapp", "phone", "email"}
    email = next(i for i in card["identities"] if i["kind"] == "email")
    assert [c["name"] for c in email["channels"]] == ["Mail"]
    assert [o["external_ref"] for o in card["orders"]] and len(card["deals"]) == 1
    merged_event = db.session.scalar(select(Event).where(Event.type == "customer.merged"))
    assert merged_event.payload["merged_customer_id"] == b.id
    assert db.session.scalar(select(AuditLog).where(AuditLog.action == "customer.merge")
                             ).details["reason"] == "same person, two channels"
    # a merged customer is not merged again or edited
    assert api.post(f"/customers/{b.id}/merge", json={"other_id": a.id}).status_code == 409
    assert api.patch(f"/customers/{b.id}", json={"name": "x"}).status_code == 409

    undone = api.post(f"/customers/{a.id}/unmerge", json={"reason": "wrong person"})
    assert undone.status_code == 200, undone.json
    assert undone.json["status"] == "unmerged" and undone.json["unmerged_by_id"] == admin.id
    db.session.expire_all()
    assert _state() == before
    audit = db.session.scalars(select(AuditLog).where(AuditLog.target_type == "customer")
                               .order_by(AuditLog.id)).all()
    assert [a_.action for a_ in audit] == ["customer.merge", "customer.unmerge"]
    assert audit[1].details["reason"] == "wrong person" and audit[1].actor_id == admin.id
    history = api.get(f"/customers/{b.id}/audit").json["items"]
    assert [h["action"] for h in history] == ["customer.unmerge", "customer.merge"]
    assert api.post(f"/customers/{a.id}/unmerge", json={}).status_code == 409


def test_accept_keeping_the_newer_customer_then_unmerge(ctx, api):
    """The agent picks the survivor: the suggestion's second (newer) customer is kept, the
    older one merged into it; unmerge still restores every row exactly."""
    wa, tg = _channel("whatsapp", "WA"), _channel("telegram", "TG")
    _inbound(wa, "wamid.1", Handle("whatsapp", WA_ID), "Привет", sender_name="Ivan",
             also_known_as=(Handle("phone", PHONE),))
    _inbound(tg, "tg.1", Handle("telegram", "42"), "my number is +7 916 123 45 67",
             sender_name="Ivan Petrov", evidence=(Handle("phone", PHONE, verified=False),))
    older, newer = _customer_of("phone", PHONE).id, _customer_of("telegram", "42").id
    assert api.post("/orders", json={"customer_id": older, "external_ref": "o-1",
                                     "total": "10"}).status_code == 201
    assert api.post("/notes", json={"customer_id": newer, "text": "VIP"}).status_code == 201
    db.session.expire_all()
    before = _state()

    (suggestion,) = api.get("/merge-suggestions").json["items"]
    assert suggestion["customer"]["id"] == older
    stranger = api.post(f"/merge-suggestions/{suggestion['id']}/accept", json={"keep": 999999})
    assert stranger.status_code == 422 and "keep" in stranger.json["detail"]["json"]
    accepted = api.post(f"/merge-suggestions/{suggestion['id']}/accept",
                        json={"keep": newer, "choose": {"name": "other"}, "reason": "same phone"})
    assert accepted.status_code == 201, accepted.json
    assert (accepted.json["target_id"], accepted.json["source_id"]) == (newer, older)
    db.session.expire_all()
    kept, gone = db.session.get(Customer, newer), db.session.get(Customer, older)
    assert gone.merged_into_id == newer and kept.name == "Ivan"
    assert {i.kind for i in kept.identities} == {"whatsapp", "phone", "telegram"}
    assert {o.customer_id for o in db.session.scalars(select(Order))} == {newer}
    # the older customer's open conversation is resolved: one open conversation per customer
    statuses = {c.id: c.status for c in db.session.scalars(select(Conversation))}
    assert sorted(statuses.values()) == ["open", "resolved"]

    undone = api.post(f"/customers/{newer}/unmerge", json={"reason": "not sure"})
    assert undone.status_code == 200, undone.json
    db.session.expire_all()
    assert _state() == before


def test_card_update_and_search(ctx, api):
    wa = _channel("whatsapp", "WA")
    _inbound(wa, "w1", Handle("whatsapp", WA_ID), "Hi", sender_name="Иван Петров",
             also_known_as=(Handle("phone", PHONE),))
    ivan = _customer_of("phone", PHONE)
    for query in ("8 (916) 123-45-67", "+7 916 123 45 67", "Петров", WA_ID[-7:]):
        found = api.get("/customers", query_string={"q": query}).json["items"]
        assert [c["id"] for c in found] == [ivan.id], query
    assert api.get("/customers", query_string={"q": "nobody"}).json["items"] == []

    assert api.post("/custom-fields", json={"key": "budget", "label": "Budget",
                                            "type": "number"}).status_code == 201
    assert api.post("/custom-fields", json={"key": "since", "label": "Since",
                                            "type": "date"}).status_code == 201
    bad = api.patch(f"/customers/{ivan.id}", json={"custom_fields": {"budget": "lots"}})
    assert bad.status_code == 422
    assert "custom_fields.budget" in bad.json["detail"]["json"]
    bad = api.patch(f"/customers/{ivan.id}", json={"custom_fields": {"color": "red"}})
    assert bad.status_code == 422 and "custom_fields.color" in bad.json["detail"]["json"]
    bad = api.patch(f"/customers/{ivan.id}", json={"owner_id": 9999})
    assert bad.status_code == 422 and "owner_id" in bad.json["detail"]["json"]
    bad = api.patch(f"/customers/{ivan.id}", json={"tags": "vip"})
    assert bad.status_code == 422 and "tags" in bad.json["detail"]["json"]
    ok = api.patch(f"/customers/{ivan.id}", json={"custom_fields": {"budget": "1500,5",
                                                                    "since": "2025-02-01"},
                                                  "tags": ["vip", "vip", "opt"]})
    assert ok.status_code == 200
    assert ok.json["custom_fields"] == {"budget": 1500.5, "since": "2025-02-01"}
    assert ok.json["tags"] == ["vip", "opt"]
    event = db.session.scalars(select(Event).where(Event.type == "customer.updated")
                               .order_by(Event.id.desc())).first()
    assert event.payload["custom_fields"]["budget"] == 1500.5
    assert event.channel_id == wa.id  # agents of the customer's channel see it live

    added = api.post(f"/customers/{ivan.id}/identities", json={"kind": "email",
                                                               "value": " Ivan@ACME.example "})
    assert added.status_code == 201 and added.json["value"] == "ivan@acme.example"
    bad = api.post(f"/customers/{ivan.id}/identities", json={"kind": "phone", "value": "12"})
    assert bad.status_code == 422 and "value" in bad.json["detail"]["json"]
    assert api.get("/customers/999999").status_code == 404
