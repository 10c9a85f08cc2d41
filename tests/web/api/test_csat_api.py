"""Feedback (CSAT) through the API: the settings (admins, 422 naming the field), a
conversation's answer, and /api/v1/reports/csat with figures computed by hand (average,
distribution 1-5, response rate, per channel and per agent; the filters; CSV)."""
from __future__ import annotations

import csv
import io
from datetime import timedelta

from sqlalchemy import select

from app.infra.models import Conversation, CsatSurvey, Team, utcnow
from app.infra.state import db
from tests import inbox_helpers as h


def test_settings_are_admins_and_checked(app, api, ctx):
    body = api.get("/settings/csat").json
    assert body["enabled"] is False and body["throttle_days"] == 30
    assert body["questions"]["ru"].startswith("Спасибо") and "Oceń" in body["questions"]["pl"]
    changed = api.patch("/settings/csat", json={
        "enabled": True, "throttle_days": 14, "questions": {"pl": "Jak oceniasz rozmowę? 1-5"}})
    assert changed.status_code == 200, changed.json
    assert changed.json["questions"]["pl"] == "Jak oceniasz rozmowę? 1-5"
    assert changed.json["throttle_days"] == 14 and changed.json["enabled"] is True
    bad = api.patch("/settings/csat", json={"throttle_days": -1})
    assert bad.status_code == 422 and "throttle_days" in bad.json["detail"]["json"]
    bad = api.patch("/settings/csat", json={"questions": {"de": "Wie war's?"}})
    assert bad.status_code == 422 and "questions.de" in bad.json["detail"]["json"]
    assert api.get("/settings/csat").json["throttle_days"] == 14   # nothing written
    # an empty text goes back to the built-in question
    api.patch("/settings/csat", json={"questions": {"pl": ""}})
    assert api.get("/settings/csat").json["questions"]["pl"].startswith("Dziękujemy")
    alice = h.agent("alice@example.com", "Alice", ["Support"])
    client = app.test_client()
    headers = {"Authorization": f"Bearer {h.token(alice)}"}
    assert client.get("/api/v1/settings/csat", headers=headers).status_code == 403
    assert client.patch("/api/v1/settings/csat", json={"enabled": False},
                        headers=headers).status_code == 403


def _setup(telegram_api):
    support, sales = h.channels(telegram_api)
    anna = h.agent("anna@example.com", "Anna", ["Support", "Sales"])
    boris = h.agent("boris@example.com", "Boris", ["Sales"])
    now = utcnow()
    plan = [  # channel, agent, score, days ago
        (support, anna, 5, 1), (support, anna, 4, 2), (support, boris, None, 3),
        (sales, boris, 2, 4), (sales, None, 5, 5), (sales, boris, 1, 40)]
    for n, (channel, agent, score, days) in enumerate(plan):
        message = h.inbound(channel, 9000 + n, f"Вопрос номер {n}")
        db.session.add(CsatSurvey(
            conversation_id=message.conversation_id, customer_id=message.customer_id,
            channel_id=channel.id, agent_id=agent.id if agent else None, language="ru",
            asked_at=now - timedelta(days=days), score=score,
            answered_at=now - timedelta(days=days) if score else None,
            answered_via="reply" if score else None))
    db.session.commit()
    h.inbound(support, 9100, "Без опроса")   # a conversation nobody was asked about
    return support.id, sales.id, anna.id, boris.id


def _row(items, group, **key):
    return next(i for i in items if i["group"] == group and all(i[k] == v for k, v in key.items()))


def test_report_figures(app, api, ctx, telegram_api):
    support, sales, anna, boris = _setup(telegram_api)
    body = api.get("/reports/csat").json
    total = body["totals"]
    # the last 30 days: five asked, four answered (5, 4, 2, 5)
    assert total["asked"] == 5 and total["answered"] == 4
    assert total["average"] == 4.0 and total["response_rate"] == 0.8
    assert total["distribution"] == {"1": 0, "2": 1, "3": 0, "4": 1, "5": 2}
    items = body["items"]
    s = _row(items, "channel", channel_id=support)
    assert (s["asked"], s["answered"], s["average"], s["response_rate"]) == (3, 2, 4.5, 0.6667)
    s = _row(items, "channel", channel_id=sales)
    assert (s["asked"], s["answered"], s["average"], s["response_rate"]) == (2, 2, 3.5, 1.0)
    a = _row(items, "agent", agent_id=anna)
    assert (a["name"], a["asked"], a["average"], a["distribution"]["4"]) == ("Anna", 2, 4.5, 1)
    b = _row(items, "agent", agent_id=boris)
    assert (b["asked"], b["answered"], b["average"], b["response_rate"]) == (2, 1, 2.0, 0.5)
    assert _row(items, "agent", agent_id=None)["average"] == 5.0
    # filters: agent, channel, team (its channels), period
    assert api.get(f"/reports/csat?agent_id={boris}").json["totals"]["average"] == 2.0
    assert api.get(f"/reports/csat?channel_id={sales}").json["totals"]["asked"] == 2
    team = db.session.scalar(select(Team).where(Team.name == "Support"))
    assert api.get(f"/reports/csat?team_id={team.id}").json["totals"]["asked"] == 3
    since = (utcnow() - timedelta(days=45)).date().isoformat()
    longer = api.get(f"/reports/csat?from={since}").json["totals"]
    assert longer["asked"] == 6 and longer["distribution"]["1"] == 1 and longer["average"] == 3.4
    assert api.get("/reports/csat?channel_id=abc").status_code == 422
    # CSV: one row per group, the distribution as columns
    response = api.get("/reports/csat?format=csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0]["group"] == "total" and rows[0]["average"] == "4.0"
    assert rows[0]["distribution_5"] == "2" and rows[0]["response_rate"] == "0.8"
    assert {r["group"] for r in rows} == {"total", "channel", "agent"} and len(rows) == 6
    # the conversation's answer
    first = db.session.scalar(select(CsatSurvey).order_by(CsatSurvey.id))
    got = api.get(f"/conversations/{first.conversation_id}/csat").json
    assert got["asked"] is True and got["survey"]["score"] == 5
    other = db.session.scalar(select(Conversation).where(
        Conversation.id.not_in(select(CsatSurvey.conversation_id))).limit(1))
    assert api.get(f"/conversations/{other.id}/csat").json == {"asked": False, "survey": None}
    assert api.get("/conversations/999999/csat").status_code == 404
