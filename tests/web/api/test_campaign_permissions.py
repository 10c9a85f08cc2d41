"""Who may do what with a campaign: an agent sees their own and their teammates' campaigns
and changes only their own (403 on a teammate's, 404 on another team's); an admin sees and
changes all; the page offers the buttons only to those who may use them."""
from __future__ import annotations

from app.infra.models import Campaign
from app.infra.state import db
from tests import inbox_helpers as h


def client_for(app, agent):
    token = h.token(agent)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}

    class Api:
        def call(self, method, path, json=None):
            return client.open(f"/api/v1{path}", method=method, json=json, headers=headers)
    return Api()


def test_only_the_creator_or_an_admin_changes_a_campaign(app, ctx, api, telegram_api):
    support, sales = h.channels(telegram_api)
    h.inbound(support, 9101, "Привет", first_name="Anna")
    h.inbound(sales, 9102, "Cześć", first_name="Piotr")
    sam = client_for(app, h.agent("sam@example.com", "Sam Sales", ["Sales"]))
    sue = client_for(app, h.agent("sue@example.com", "Sue Sales", ["Sales"]))
    tom = client_for(app, h.agent("tom@example.com", "Tom Support", ["Support"]))
    segment = sam.call("POST", "/segments", {"name": "Mine", "filter": {}}).json
    created = sam.call("POST", "/campaigns", {"name": "Promocja", "segment_id": segment["id"],
                                              "text": "Cześć {first_name}"})
    assert created.status_code == 201 and created.json["can_manage"] is True
    cid = created.json["id"]

    # a teammate sees it, without the right to change it
    seen = sue.call("GET", f"/campaigns/{cid}")
    assert seen.status_code == 200 and seen.json["can_manage"] is False
    assert [c["id"] for c in sue.call("GET", "/campaigns").json["items"]] == [cid]
    for method, path, body in [("PATCH", f"/campaigns/{cid}", {"text": "Inny tekst"}),
                               ("POST", f"/campaigns/{cid}/start", None),
                               ("POST", f"/campaigns/{cid}/cancel", None)]:
        answer = sue.call(method, path, body)
        assert answer.status_code == 403, (path, answer.json)
        assert "creator or an admin" in answer.json["message"]
    # another team's agent does not even see it
    assert tom.call("GET", f"/campaigns/{cid}").status_code == 404
    assert tom.call("POST", f"/campaigns/{cid}/start").status_code == 404
    assert tom.call("GET", "/campaigns").json["items"] == []
    db.session.expire_all()
    campaign = db.session.get(Campaign, cid)
    assert campaign.status == "draft" and campaign.text == "Cześć {first_name}"
    db.session.commit()

    # the creator starts and pauses it; an admin may cancel it
    assert sam.call("POST", f"/campaigns/{cid}/start").status_code == 200
    assert sue.call("POST", f"/campaigns/{cid}/pause").status_code == 403
    assert sam.call("POST", f"/campaigns/{cid}/pause").status_code == 200
    listed = api.get("/campaigns").json["items"]
    assert [c["id"] for c in listed] == [cid] and listed[0]["can_manage"] is True
    assert api.post(f"/campaigns/{cid}/cancel").status_code == 200
    assert api.get(f"/campaigns/{cid}").json["status"] == "cancelled"


def test_an_outside_bot_cannot_make_campaigns(app, ctx, api, telegram_api):
    segment = api.post("/segments", json={"name": "All", "filter": {}}).json
    outside = h.agent("bot@example.com", "Bot", [])
    outside.role = "bot"   # what /api/v1/bots registers an outside bot's agent as
    db.session.commit()
    bot = client_for(app, outside)
    answer = bot.call("POST", "/campaigns", {"name": "Spam", "segment_id": segment["id"],
                                             "text": "x"})
    assert answer.status_code == 403
    assert db.session.query(Campaign).count() == 0
