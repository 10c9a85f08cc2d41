"""CRM records: upserts by external_ref through the API and the signed crm webhook."""
from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

from sqlalchemy import func, select

from app.domain.channels import add_channel
from app.infra.models import Customer, Deal, Event, Identity, InboundEvent, Order
from app.infra.state import db
from tests.conftest import run_jobs

FIXTURES = Path(__file__).parents[2] / "fixtures" / "crm"


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_order_upsert_is_idempotent_and_validated(ctx, api):
    body = {"external_ref": "SHOP-1", "customer": {"email": "Anna@Example.com"},
            "total": "99.90", "currency": "eur", "items": [{"sku": "A", "qty": 2}]}
    first = api.post("/orders", json=body)
    assert first.status_code == 201, first.json
    assert first.json["created"] is True and first.json["total"] == "99.90"
    assert first.json["currency"] == "EUR"
    again = api.post("/orders", json={**body, "status": "paid"})
    assert again.status_code == 200 and again.json["created"] is False
    assert again.json["id"] == first.json["id"] and again.json["status"] == "paid"
    assert _count(Order) == 1 and _count(Customer) == 1
    anna = db.session.scalar(select(Identity).where(Identity.value == "anna@example.com"))
    assert anna is not None and anna.customer_id == first.json["customer_id"]
    updates = db.session.scalars(select(Event).where(Event.type == "customer.updated")).all()
    assert updates and updates[-1].payload["orders"][0]["status"] == "paid"

    bad = api.post("/orders", json={"external_ref": "SHOP-2", "total": "-1", "currency": "euro",
                                    "customer": {"email": "x@example.com"}})
    assert bad.status_code == 422
    assert set(bad.json["detail"]["json"]) == {"total", "currency"}
    bad = api.post("/orders", json={"external_ref": "SHOP-3", "total": "1"})
    assert bad.status_code == 422 and "customer" in bad.json["detail"]["json"]
    bad = api.post("/orders", json={"external_ref": "SHOP-3", "customer_id": 424242})
    assert bad.status_code == 422 and "customer_id" in bad.json["detail"]["json"]
    bad = api.post("/orders", json={"customer": {"phone": "12"}})
    assert bad.status_code == 422 and "customer.phone" in bad.json["detail"]["json"]
    assert _count(Order) == 1


def test_phone_with_country_code_but_no_plus_finds_the_polish_customer(ctx, api):
    # The default region is RU; "48601234567" read there is no valid number, while the
    # international reading (+48 601 234 567, Poland) is: that one is meant.
    first = api.post("/orders", json={"external_ref": "PL-1", "total": "10", "currency": "PLN",
                                      "customer": {"phone": "+48 601 234 567",
                                                   "name": "Zofia Wójcik"}})
    assert first.status_code == 201, first.json
    for written in ("48601234567", "48 601 234 567", "48-601-234-567"):
        again = api.post("/orders", json={"external_ref": f"PL-{written}", "total": "1",
                                          "currency": "PLN", "customer": {"phone": written}})
        assert again.status_code == 201, again.json
        assert again.json["customer_id"] == first.json["customer_id"], written
        found = api.get("/customers", query_string={"q": written}).json["items"]
        assert [c["id"] for c in found] == [first.json["customer_id"]], written
    # A valid national reading still wins: 8 916 ... is Moscow, not +8 (no such code).
    ru = api.post("/orders", json={"external_ref": "RU-1", "total": "1", "currency": "RUB",
                                   "customer": {"phone": "8 916 123-45-67"}})
    assert ru.status_code == 201
    assert db.session.scalar(select(Identity.value).where(
        Identity.customer_id == ru.json["customer_id"], Identity.kind == "phone")) == "+79161234567"
    assert _count(Customer) == 2


def test_deals_follow_the_pipeline_and_notes_upsert(ctx, api, admin):
    for n, key in enumerate(["lead", "proposal", "won"]):
        created = api.post("/pipeline/stages", json={"key": key, "name": key.title(),
                                                     "position": n,
                                                     "outcome": "won" if key == "won" else "open"})
        assert created.status_code == 201
    assert api.post("/pipeline/stages", json={"key": "lead", "name": "x"}).status_code == 422
    assert api.post("/pipeline/stages", json={"key": "Bad Key", "name": "x"}).status_code == 422
    assert [s["key"] for s in api.get("/pipeline/stages").json["items"]] == ["lead", "proposal", "won"]

    deal = api.post("/deals", json={"external_ref": "D-1", "title": "Pilot", "amount": "1200.5",
                                    "customer": {"phone": "+7 916 000-11-22", "name": "Пётр"},
                                    "owner_email": "admin@example.com",
                                    "expected_close": "2026-12-31"})
    assert deal.status_code == 201, deal.json
    assert deal.json["stage"] == "lead" and deal.json["owner_id"] == admin.id
    moved = api.post("/deals", json={"external_ref": "D-1", "stage": "proposal"})
    assert moved.status_code == 200 and moved.json["stage"] == "proposal"
    assert moved.json["title"] == "Pilot" and moved.json["amount"] == "1200.50"
    bad = api.post("/deals", json={"external_ref": "D-1", "stage": "lost-in-space"})
    assert bad.status_code == 422 and "stage" in bad.json["detail"]["json"]
    bad = api.post("/deals", json={"external_ref": "D-2", "customer_id": deal.json["customer_id"]})
    assert bad.status_code == 422 and "title" in bad.json["detail"]["json"]
    assert _count(Deal) == 1
    events = db.session.scalars(select(Event).where(Event.type == "deal.updated")
                                .order_by(Event.id)).all()
    assert [e.payload["stage"] for e in events] == ["lead", "proposal"]

    note = api.post("/notes", json={"external_ref": "N-1", "customer_id": deal.json["customer_id"],
                                    "text": "Просил счёт"})
    assert note.status_code == 201 and note.json["author_name"] == admin.name
    edited = api.post("/notes", json={"external_ref": "N-1", "text": "Просил счёт с НДС"})
    assert edited.status_code == 200 and edited.json["id"] == note.json["id"]
    card = api.get(f"/customers/{deal.json['customer_id']}").json
    assert [n["text"] for n in card["notes"]] == ["Просил счёт с НДС"]
    assert card["notes"][0]["author_name"] == admin.name
    assert card["deals"][0]["stage"] == "proposal"
    assert {i["value"] for i in card["identities"]} == {"+79160001122"}


def _signed(secret: str, body: bytes) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Threadline-Signature": f"sha256={digest}", "Content-Type": "application/json"}


def test_crm_webhook_signed_good_missing_wrong(app, ctx):
    channel = add_channel("crm", "Shop", {})
    db.session.commit()
    secret = channel.settings["secret"]
    assert len(secret) >= 32
    client = app.test_client()
    url = f"/webhooks/crm/{channel.id}"
    body = (FIXTURES / "order_paid.json").read_bytes()

    missing = client.post(url, data=body, headers={"Content-Type": "application/json"})
    assert missing.status_code == 401
    wrong = client.post(url, data=body, headers=_signed("not-the-secret", body))
    assert wrong.status_code == 403
    tampered = client.post(url, data=body.replace(b"4990.00", b"1.00"), headers=_signed(secret, body))
    assert tampered.status_code == 403
    assert _count(InboundEvent) == 0

    good = client.post(url, data=body, headers=_signed(secret, body))
    assert good.status_code == 200 and good.json["duplicate"] is False
    repeat = client.post(url, data=body, headers=_signed(secret, body))
    assert repeat.status_code == 200 and repeat.json["duplicate"] is True
    run_jobs(app)
    db.session.expire_all()
    event = db.session.scalar(select(InboundEvent))
    assert event.status == "processed", event.error
    order = db.session.scalar(select(Order))
    assert (order.external_ref, str(order.total), order.currency, order.status) == (
        "SHOP-1001", "4990.00", "RUB", "paid")
    olga = db.session.get(Customer, order.customer_id)
    assert olga.name == "Ольга Смирнова"
    assert {(i.kind, i.value) for i in olga.identities} == {
        ("email", "olga@example.com"), ("phone", "+79167654321")}
    deal = db.session.scalar(select(Deal))
    assert deal.customer_id == olga.id and deal.title == "Опт: 50 платьев"

    # authentic but invalid: stored, answered 200, failed with the reason, nothing applied
    broken = json.dumps({"id": "evt-bad", "type": "order",
                         "data": {"external_ref": "X", "total": "abc",
                                  "customer": {"email": "z@example.com"}}}).encode()
    assert client.post(url, data=broken, headers=_signed(secret, broken)).status_code == 200
    run_jobs(app)
    db.session.expire_all()
    failed = db.session.scalar(select(InboundEvent).where(InboundEvent.external_id == "id:evt-bad"))
    assert failed.status == "failed" and "total" in failed.error
    assert _count(Order) == 1 and _count(Customer) == 1
