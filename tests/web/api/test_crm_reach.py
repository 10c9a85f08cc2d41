"""CRM upserts stay within the caller's reach (issue 14, High 1): an agent's token writes
orders, deals, notes and handles only for customers their teams' channels show, never finds,
reads, changes or moves another team's customer or record; admin tokens and the signed CRM
webhook write everywhere. The card lists only the reader's conversations."""
from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.domain.channels import add_channel
from app.infra.models import Conversation, Customer, Deal, Identity, InboundEvent, Note, Order, utcnow
from app.infra.state import db
from tests import inbox_helpers as h
from tests.conftest import run_jobs


@pytest.fixture
def world(ctx, admin, telegram_api):
    support, sales = h.channels(telegram_api)
    alice = h.agent("alice@example.com", "Alice Support", ["Support"])
    olga = h.conversation_of(h.inbound(support, 501, "Где мой заказ?", "Ольга")).customer
    grace = h.conversation_of(h.inbound(sales, 502, "Wholesale price list please", "Grace")).customer
    db.session.add(Identity(customer_id=grace.id, kind="email", value="grace@wholesale.example"))
    # Olga also wrote to Sales once: Alice must not learn that conversation's subject
    db.session.add(Conversation(customer_id=olga.id, channel_id=sales.id, status="resolved",
                                subject="Тайный оптовый контракт",
                                created_at=utcnow() - timedelta(days=30),
                                last_activity_at=utcnow() - timedelta(days=30)))
    db.session.commit()
    return {"support": support, "sales": sales, "alice": alice, "olga_id": olga.id,
            "grace_id": grace.id, "admin_token": h.token(admin), "alice_token": h.token(alice)}


def _post(client, token, path, body):
    return client.post(f"/api/v1{path}", json=body, headers={"Authorization": f"Bearer {token}"})


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_an_agent_cannot_write_across_team_walls(app, world):
    client = app.test_client()
    admin, alice = world["admin_token"], world["alice_token"]
    grace_id = world["grace_id"]
    # Grace's records, written by an admin
    for path, body in (("/orders", {"external_ref": "SALES-ORD", "total": "500.00"}),
                       ("/deals", {"external_ref": "SALES-DEAL", "title": "Опт 2027"}),
                       ("/notes", {"external_ref": "SALES-NOTE", "text": "VIP, скидка 15%"})):
        made = _post(client, admin, path, {**body, "customer_id": grace_id})
        assert made.status_code == 201, made.json

    # a handle of Grace's (Sales) finds nothing to attach to: refused on that field
    for path, body in (("/orders", {"external_ref": "A-1", "total": "1.00"}),
                       ("/deals", {"external_ref": "A-2", "title": "x"}),
                       ("/notes", {"external_ref": "A-3", "text": "x"})):
        for handle in ({"telegram": "502"}, {"email": "GRACE@wholesale.example"},
                       {"email": "new-one@example.com", "telegram": "502"}):
            refused = _post(client, alice, path, {**body, "customer": handle})
            assert refused.status_code == 422, (path, handle, refused.json)
            assert set(refused.json["detail"]["json"]) <= {"customer.telegram", "customer.email"}
        by_id = _post(client, alice, path, {**body, "customer_id": grace_id})
        assert by_id.status_code == 422 and "customer_id" in by_id.json["detail"]["json"]

    # another team's external_ref is neither read, changed nor moved
    olga_handle = {"telegram": "501"}
    for path, body in (("/orders", {"external_ref": "SALES-ORD", "status": "cancelled"}),
                       ("/deals", {"external_ref": "SALES-DEAL", "stage": "lost"}),
                       ("/notes", {"external_ref": "SALES-NOTE", "text": "overwritten"})):
        for extra in ({}, {"customer": olga_handle}, {"customer_id": world["olga_id"]}):
            refused = _post(client, alice, path, {**body, **extra})
            assert refused.status_code == 422, (path, extra, refused.json)
            assert set(refused.json["detail"]["json"]) == {"external_ref"}
            text = refused.get_data(as_text=True)
            assert "500" not in text and "VIP" not in text and "Опт 2027" not in text
    db.session.expire_all()
    assert _count(Order) == _count(Deal) == _count(Note) == 1
    order = db.session.scalar(select(Order))
    deal = db.session.scalar(select(Deal))
    note = db.session.scalar(select(Note))
    assert (order.customer_id, order.status) == (grace_id, "new")
    assert (deal.customer_id, deal.title) == (grace_id, "Опт 2027")
    assert (note.customer_id, note.text) == (grace_id, "VIP, скидка 15%")
    assert {(i.kind, i.value) for i in db.session.get(Customer, grace_id).identities} == {
        ("telegram", "502"), ("email", "grace@wholesale.example")}

    # within reach everything still works: Olga by handle, and a brand-new customer
    mine = _post(client, alice, "/orders", {"external_ref": "A-OK", "total": "10.00",
                                            "customer": olga_handle})
    assert mine.status_code == 201 and mine.json["customer_id"] == world["olga_id"]
    new = _post(client, alice, "/deals", {"external_ref": "A-NEW", "title": "Новый клиент",
                                          "customer": {"email": "Ivan@Example.com"}})
    assert new.status_code == 201 and new.json["customer_id"] not in (grace_id, world["olga_id"])
    # a customer with no conversation yet (a shop push) is everyone's
    again = _post(client, alice, "/notes", {"text": "перезвонить", "customer": {"email": "ivan@example.com"}})
    assert again.status_code == 201 and again.json["customer_id"] == new.json["customer_id"]

    # the admin writes everywhere
    moved = _post(client, admin, "/orders", {"external_ref": "SALES-ORD", "status": "paid"})
    assert moved.status_code == 200 and moved.json["status"] == "paid"


def test_identity_conflict_and_card_hide_other_teams(app, world):
    client = app.test_client()
    alice = {"Authorization": f"Bearer {world['alice_token']}"}
    olga_id, grace_id = world["olga_id"], world["grace_id"]
    taken = client.post(f"/api/v1/customers/{olga_id}/identities",
                        json={"kind": "email", "value": "grace@wholesale.example"}, headers=alice)
    assert taken.status_code == 409
    assert str(grace_id) not in json.dumps(taken.json["detail"])
    assert "another customer" in json.dumps(taken.json["detail"])

    card = client.get(f"/api/v1/customers/{olga_id}", headers=alice)
    assert card.status_code == 200
    assert [c["channel_id"] for c in card.json["conversations"]] == [world["support"].id]
    assert "Тайный" not in card.get_data(as_text=True)
    patched = client.patch(f"/api/v1/customers/{olga_id}", json={"tags": ["vip"]}, headers=alice)
    assert patched.status_code == 200 and "Тайный" not in patched.get_data(as_text=True)
    # the live event (to the room of Olga's latest conversation, on Support) carries no
    # Sales subject either
    from app.infra.models import Event

    last = db.session.scalar(select(Event).where(Event.type == "customer.updated")
                             .order_by(Event.id.desc()).limit(1))
    assert last.channel_id == world["support"].id
    assert last.payload["id"] == olga_id and "Тайный" not in json.dumps(last.payload, ensure_ascii=False)
    admin = {"Authorization": f"Bearer {world['admin_token']}"}
    full = client.get(f"/api/v1/customers/{olga_id}", headers=admin).json
    assert len(full["conversations"]) == 2


def test_signed_crm_webhook_still_writes_everywhere(app, world):
    channel = add_channel("crm", "Shop", {})
    db.session.commit()
    body = json.dumps({"id": "evt-grace", "records": [
        {"type": "order", "data": {"external_ref": "SHOP-9", "total": "70.00",
                                   "customer": {"email": "grace@wholesale.example"}}}]}).encode()
    digest = hmac.new(channel.settings["secret"].encode(), body, hashlib.sha256).hexdigest()
    response = app.test_client().post(f"/webhooks/crm/{channel.id}", data=body, headers={
        "X-Threadline-Signature": f"sha256={digest}", "Content-Type": "application/json"})
    assert response.status_code == 200
    run_jobs(app)
    db.session.expire_all()
    assert db.session.scalar(select(InboundEvent)).status == "processed"
    assert db.session.scalar(select(Order).where(Order.external_ref == "SHOP-9")).customer_id == world["grace_id"]
