"""The sales board's API: PATCH /deals/<id> (inline edits, drag and drop) and the board page."""
from __future__ import annotations

from sqlalchemy import select

from app.infra.models import Deal, Event
from app.infra.state import db
from tests.conftest import login_session


def _deal(api, ref="D-1", **extra):
    created = api.post("/deals", json={"external_ref": ref, "title": "Annual plan",
                                       "customer": {"email": "buyer@example.com"}, **extra})
    assert created.status_code == 201, created.json
    return created.json


def test_patch_deal_edits_inline_and_publishes(ctx, api, admin):
    deal = _deal(api, stage="new")
    answer = api.patch(f"/deals/{deal['id']}", json={
        "stage": "proposal", "amount": "1250.50", "currency": "eur", "owner_id": admin.id,
        "expected_close": "2027-01-31", "title": "Annual plan, 20 seats"})
    assert answer.status_code == 200, answer.json
    body = answer.json
    assert (body["stage"], body["amount"], body["currency"], body["owner_id"],
            body["expected_close"], body["title"]) == (
        "proposal", "1250.50", "EUR", admin.id, "2027-01-31", "Annual plan, 20 seats")
    db.session.expire_all()
    row = db.session.get(Deal, deal["id"])
    assert row.stage == "proposal" and str(row.amount) == "1250.50"
    event = db.session.scalars(select(Event).where(Event.type == "deal.updated")
                               .order_by(Event.id.desc())).first()
    assert event.payload["id"] == deal["id"] and event.payload["stage"] == "proposal"
    # clearing is allowed
    cleared = api.patch(f"/deals/{deal['id']}", json={"amount": None, "owner_id": None,
                                                     "expected_close": None})
    assert cleared.status_code == 200
    assert cleared.json["amount"] is None and cleared.json["owner_id"] is None


def test_patch_deal_refuses_bad_input(ctx, api, admin):
    deal = _deal(api)
    bad = api.patch(f"/deals/{deal['id']}", json={"amount": "-5", "currency": "euro",
                                                 "expected_close": "soon"})
    assert bad.status_code == 422
    assert set(bad.json["detail"]["json"]) == {"amount", "currency", "expected_close"}
    bad = api.patch(f"/deals/{deal['id']}", json={"owner_id": 424242})
    assert bad.status_code == 422 and "owner_id" in bad.json["detail"]["json"]
    # no stages defined: any stage key goes (the board shows the stages in use)
    assert api.patch(f"/deals/{deal['id']}", json={"stage": "custom"}).status_code == 200
    for n, key in enumerate(["lead", "proposal", "won"]):
        assert api.post("/pipeline/stages", json={"key": key, "name": key.title(),
                                                  "position": n}).status_code == 201
    bad = api.patch(f"/deals/{deal['id']}", json={"stage": "nope"})
    assert bad.status_code == 422 and "stage" in bad.json["detail"]["json"]
    db.session.expire_all()
    assert db.session.get(Deal, deal["id"]).stage == "custom"
    assert api.patch(f"/deals/{deal['id']}", json={"stage": "won"}).json["stage"] == "won"
    assert api.patch("/deals/987654", json={"stage": "won"}).status_code == 404


def test_board_page_and_data(ctx, app, api, admin):
    deal = _deal(api, stage="qualified", amount="100", currency="USD")
    _deal(api, "D-2", stage="qualified", amount="50.25", currency="USD")
    _deal(api, "D-3", stage="legacy")
    client = app.test_client()
    assert client.get("/board").status_code == 302  # sign in first
    assert client.get("/board/data").status_code == 302
    import re

    form = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    db.session.commit()
    assert client.post("/login", data={"email": "admin@example.com", "csrf_token": csrf,
                                       "password": "correct horse battery"}).status_code == 302
    page = client.get("/board")
    assert page.status_code == 200 and b"board.js" in page.data
    data = client.get("/board/data").json
    keys = [s["key"] for s in data["stages"]]
    assert keys == ["new", "qualified", "proposal", "negotiation", "won", "lost", "legacy"]
    assert data["totals"]["qualified"] == {"USD": "150.25"}
    mine = next(d for d in data["deals"] if d["id"] == deal["id"])
    assert mine["customer_name"] and mine["stage"] == "qualified"
    # the inbox header links to the board; its card's deal stages default to the board's
    inbox = client.get("/").get_data(as_text=True)
    assert 'href="/board"' in inbox
    import json

    boot = json.loads(re.search(r'<script type="application/json" id="boot">(.*?)</script>',
                                inbox).group(1))
    assert boot["deal_stages"] == ["new", "qualified", "proposal", "negotiation", "won", "lost"]


def test_patch_through_the_session_needs_csrf(app, admin, start_server):
    from tests.conftest import release_db

    release_db()
    server = start_server()
    agent = login_session(server.url, "admin@example.com", "correct horse battery")
    created = agent.post(f"{server.url}/api/v1/deals", json={
        "external_ref": "S-1", "title": "Pilot", "customer": {"email": "pilot@example.com"}})
    assert created.status_code == 201, created.text
    url = f"{server.url}/api/v1/deals/{created.json()['id']}"
    assert agent.patch(url, json={"stage": "won"}).json()["stage"] == "won"
    agent.headers.pop("X-CSRFToken")
    assert agent.patch(url, json={"stage": "lost"}).status_code == 400
