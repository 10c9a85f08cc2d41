"""/api/v1/segments: filters over what we know of customers, 422 on a bad filter, members
paginated and as CSV, the editor's count, and access (an agent sees their channels'
customers only)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy import select

from app.domain.channels import add_channel
from app.infra.models import (
    Conversation, Customer, Deal, Identity, Message, OptOut, Order, Team,
)
from app.infra.state import db
from tests import inbox_helpers as h


def now():
    return datetime.now(timezone.utc)


def customer(name, tags=(), custom=None, source=None, handles=()):
    row = Customer(name=name, tags=list(tags), custom_fields=custom or {}, source=source)
    db.session.add(row)
    db.session.flush()
    for kind, value in handles:
        db.session.add(Identity(customer_id=row.id, kind=kind, value=value))
    return row


def members(api, segment_id, **params) -> list[str]:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    response = api.get(f"/segments/{segment_id}/members?{query}")
    assert response.status_code == 200, response.json
    return [m["name"] for m in response.json["items"]]


def names(api, filter_) -> list[str]:
    created = api.post("/segments", json={"name": "s", "filter": filter_})
    assert created.status_code == 201, created.json
    got = members(api, created.json["id"], limit=500)
    assert created.json["count"] == len(got)
    preview = api.post("/segments/preview", json={"filter": filter_})
    assert preview.status_code == 200 and preview.json["count"] == len(got)
    return sorted(got)


def test_filters_over_tags_fields_handles_source_orders_deals(ctx, api, admin):
    t = now()
    anna = customer("Anna", tags=["vip", "wholesale"], custom={"language": "ru", "city": "Kraków"},
                    source={"channel": "telegram", "utm_source": "instagram",
                            "utm_campaign": "spring_sale"}, handles=[("telegram", "1")])
    piotr = customer("Piotr", tags=["vip"], custom={"language": "pl"},
                     source={"utm_source": "google"}, handles=[("email", "p@example.pl"),
                                                               ("telegram", "2")])
    ewa = customer("Ewa", handles=[("whatsapp", "48600100200")])
    db.session.add_all([
        Order(customer_id=anna.id, placed_at=t - timedelta(days=3), total=Decimal("120.00"),
              status="paid"),
        Order(customer_id=anna.id, placed_at=t - timedelta(days=60), total=Decimal("80.00"),
              status="delivered"),
        Order(customer_id=piotr.id, placed_at=t - timedelta(days=45), total=Decimal("3490"),
              status="returned"),
        Deal(customer_id=ewa.id, title="Hurt", stage="negotiation", owner_id=admin.id),
        OptOut(customer_id=piotr.id, channel_id=add_channel("telegram", "Bot", {
            "token": "1:x", "mode": "polling"}).id, source="keyword")])
    merged = customer("Merged away", tags=["vip"])
    merged.merged_into_id = anna.id
    db.session.commit()

    assert names(api, {}) == ["Anna", "Ewa", "Piotr"]
    assert names(api, {"tags": {"any": ["vip"]}}) == ["Anna", "Piotr"]
    assert names(api, {"tags": {"all": ["vip", "wholesale"]}}) == ["Anna"]
    assert names(api, {"tags": {"none": ["vip"]}}) == ["Ewa"]
    assert names(api, {"custom_fields": {"city": "Kraków"}}) == ["Anna"]
    assert names(api, {"language": ["PL"]}) == ["Piotr"]
    assert names(api, {"handles": {"any": ["email", "whatsapp"]}}) == ["Ewa", "Piotr"]
    assert names(api, {"handles": {"all": ["telegram"], "none": ["email"]}}) == ["Anna"]
    assert names(api, {"source": {"utm_source": "Instagram"}}) == ["Anna"]
    assert names(api, {"source": {"utm_source": ["instagram", "google"],
                                  "utm_campaign": "spring_sale"}}) == ["Anna"]
    assert names(api, {"orders": {"last_within_days": 30}}) == ["Anna"]
    assert names(api, {"orders": {"count_min": 1, "total_min": 1000}}) == ["Piotr"]
    assert names(api, {"orders": {"count_max": 0}}) == ["Ewa"]
    assert names(api, {"orders": {"status": ["returned"]}}) == ["Piotr"]
    assert names(api, {"orders": {"last_before_days": 40}}) == ["Piotr"]
    assert names(api, {"deals": {"stage": ["negotiation"], "owner_id": [admin.id]}}) == ["Ewa"]
    assert names(api, {"opted_out": True}) == ["Piotr"]
    assert names(api, {"opted_out": False}) == ["Anna", "Ewa"]
    # the demo's question: bought in the last 30 days, came from the Instagram campaign
    assert names(api, {"orders": {"last_within_days": 30},
                       "source": {"utm_source": "instagram"}}) == ["Anna"]


def test_items_containing_last_outbound_and_consent_per_channel(ctx, api, admin):
    """Issue 21's remaining filters: order items containing a text in any letter case
    (Cyrillic and Polish too), our last message to the customer, consent per channel."""
    t = now()
    bot = add_channel("telegram", "Bot", {"token": "1:x", "mode": "polling"})
    mail = add_channel("email", "Mail", {"imap_host": "127.0.0.1", "imap_user": "u",
                                         "imap_password": "p", "imap_security": "none",
                                         "smtp_host": "127.0.0.1", "from_address": "a@b.pl"})
    olga = customer("Olga")
    jan = customer("Jan")
    ewa = customer("Ewa")
    db.session.add_all([
        Order(customer_id=olga.id, placed_at=t, status="paid",
              items=[{"name": "Платье летнее", "qty": 1}, {"sku": "A-1"}]),
        Order(customer_id=jan.id, placed_at=t, status="paid",
              items=[{"name": "Żółw pluszowy ŁOŚ", "qty": 2}]),
        Order(customer_id=ewa.id, placed_at=t, status="paid", items=[]),
    ])
    for who, ago in ((olga, 2), (jan, 40)):
        conv = Conversation(customer_id=who.id, channel_id=bot.id, status="resolved",
                            last_activity_at=t)
        db.session.add(conv)
        db.session.flush()
        db.session.add(Message(conversation_id=conv.id, customer_id=who.id, channel_id=bot.id,
                               direction="out", text="Promocja", status="sent",
                               created_at=t - timedelta(days=ago)))
    db.session.add_all([OptOut(customer_id=olga.id, channel_id=mail.id, source="keyword"),
                        OptOut(customer_id=jan.id, channel_id=bot.id, source="blocked")])
    db.session.commit()

    assert names(api, {"orders": {"items_contain": "ПЛАТЬЕ"}}) == ["Olga"]
    assert names(api, {"orders": {"items_contain": "żółw"}}) == ["Jan"]
    assert names(api, {"orders": {"items_contain": "łoś"}}) == ["Jan"]
    assert names(api, {"orders": {"items_contain": "a-1"}}) == ["Olga"]
    assert names(api, {"orders": {"items_contain": "qty"}}) == []    # keys are not texts
    assert names(api, {"orders": {"items_contain": "100%"}}) == []   # % is a letter here
    assert names(api, {"last_outbound": {"within_days": 7}}) == ["Olga"]
    # not written to for 30 days: Jan (40 days ago) and Ewa (never)
    assert names(api, {"last_outbound": {"before_days": 30}}) == ["Ewa", "Jan"]
    assert names(api, {"consent": {"not_opted_out": [bot.id]}}) == ["Ewa", "Olga"]
    assert names(api, {"consent": {"not_opted_out": [bot.id, mail.id]}}) == ["Ewa"]
    assert names(api, {"consent": {"opted_out": [mail.id]}}) == ["Olga"]
    for bad, field in [({"orders": {"items_contain": ""}}, "filter.orders.items_contain"),
                       ({"orders": {"items_contain": 5}}, "filter.orders.items_contain"),
                       ({"last_outbound": {"ago": 1}}, "filter.last_outbound.ago"),
                       ({"consent": {}}, "filter.consent"),
                       ({"consent": {"not_opted_out": ["x"]}}, "filter.consent.not_opted_out")]:
        answer = api.post("/segments/preview", json={"filter": bad})
        assert answer.status_code == 422, bad
        assert field in answer.json["detail"]["json"], (bad, answer.json)


def test_bad_filters_answer_422_naming_the_condition(ctx, api):
    cases = [({"colour": "red"}, "filter.colour"),
             ({"tags": ["vip"]}, "filter.tags"),
             ({"tags": {"some": ["vip"]}}, "filter.tags.some"),
             ({"tags": {"any": []}}, "filter.tags.any"),
             ({"handles": {"any": ["fax"]}}, "filter.handles.any"),
             ({"orders": {"count_min": -1}}, "filter.orders.count_min"),
             ({"orders": {"count_min": 1.5}}, "filter.orders.count_min"),
             ({"orders": {"total_min": "lots"}}, "filter.orders.total_min"),
             ({"orders": {}}, "filter.orders"),
             ({"deals": {"owner_id": ["me"]}}, "filter.deals.owner_id"),
             ({"last_inbound": {"within_days": True}}, "filter.last_inbound.within_days"),
             ({"opted_out": "yes"}, "filter.opted_out"),
             ({"source": {"utm_source": 5}}, "filter.source.utm_source"),
             ("everyone", "filter")]
    for filter_, field in cases:
        response = api.post("/segments", json={"name": "bad", "filter": filter_})
        assert response.status_code == 422, (filter_, response.json)
        assert field in response.json["detail"]["json"], (filter_, response.json)
        preview = api.post("/segments/preview", json={"filter": filter_})
        assert preview.status_code == 422 and field in preview.json["detail"]["json"]
    assert api.post("/segments", json={"name": " ", "filter": {}}).status_code == 422
    assert api.get("/segments").json["items"] == []


def test_members_paginate_export_csv_and_edit(ctx, api):
    for n in range(7):
        customer(f"Klient {n}", tags=["promo"], handles=[("email", f"k{n}@example.pl")])
    customer("=HYPERLINK(\"evil\")", tags=["promo"])
    db.session.commit()
    segment = api.post("/segments", json={"name": "Promo Łódź", "filter": {"tags": {"any": ["promo"]}}}).json
    first = api.get(f"/segments/{segment['id']}/members?limit=5").json
    second = api.get(f"/segments/{segment['id']}/members?limit=5&cursor={first['next_cursor']}").json
    assert len(first["items"]) == 5 and len(second["items"]) == 3 and second["next_cursor"] is None
    assert first["items"][0]["identities"] == [{"kind": "email", "value": "k0@example.pl"}]
    assert api.get(f"/segments/{segment['id']}/members?cursor=abc").status_code == 422
    csv_response = api.get(f"/segments/{segment['id']}/members?format=csv")
    assert csv_response.status_code == 200 and csv_response.mimetype == "text/csv"
    lines = csv_response.get_data(as_text=True).splitlines()
    assert lines[0].startswith("id,name") and len(lines) == 9
    assert "k6@example.pl" in lines[7] and "'=HYPERLINK" in lines[8]
    patched = api.patch(f"/segments/{segment['id']}", json={"filter": {"handles": {"any": ["email"]}}})
    assert patched.status_code == 200 and patched.json["count"] == 7
    assert api.patch(f"/segments/{segment['id']}", json={"filter": {"x": 1}}).status_code == 422
    assert api.delete(f"/segments/{segment['id']}").status_code == 204
    assert api.get(f"/segments/{segment['id']}").status_code == 404


def test_an_agent_sees_only_customers_of_their_teams_channels(app, ctx, telegram_api):
    support, sales = h.channels(telegram_api)
    h.inbound(support, 9001, "Привет", first_name="Support Customer")
    h.inbound(sales, 9002, "Cześć", first_name="Sales Customer")
    customer("Imported, no conversation")
    db.session.commit()
    sam = h.agent("sam@example.com", "Sam Sales", ["Sales"])
    token = h.token(sam)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    created = client.post("/api/v1/segments", json={"name": "mine", "filter": {}}, headers=headers)
    assert created.status_code == 201 and created.json["count"] == 2
    got = client.get(f"/api/v1/segments/{created.json['id']}/members", headers=headers).json
    assert sorted(m["name"] for m in got["items"]) == ["Imported, no conversation", "Sales Customer"]
    assert db.session.scalar(select(Team.id).where(Team.name == "Sales")) is not None


def test_huge_numbers_and_ids_are_refused_not_crashed(ctx, api):
    for filter_, field in [({"orders": {"last_within_days": 10**9}}, "filter.orders.last_within_days"),
                           ({"last_inbound": {"within_days": 10**9}}, "filter.last_inbound.within_days"),
                           ({"orders": {"count_min": 10**20}}, "filter.orders.count_min"),
                           ({"team_id": [2**40]}, "filter.team_id")]:
        response = api.post("/segments/preview", json={"filter": filter_})
        assert response.status_code == 422 and field in response.json["detail"]["json"], response.json
    assert api.post("/campaigns", json={"name": "x", "segment_id": 2**40, "text": "x"}).status_code == 422
