"""`/settings/bots` (issue 18) through the real login form: admins only (an agent gets the
HTML 403 page), a bad URL or no channel said next to the field with nothing written, the
bot's token and secret shown once, pausing hands its conversations to people."""
from __future__ import annotations

import re

from sqlalchemy import func, select

from app.domain.channels import add_channel
from app.infra.models import Bot, Channel, Conversation
from app.infra.state import db
from tests import inbox_helpers as h
from tests.web.api.test_inbox_api import _login


def _csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _bots(app) -> list[Bot]:
    with app.app_context():
        rows = list(db.session.scalars(select(Bot).order_by(Bot.id)))
        db.session.commit()
        return rows


def test_bots_page_for_admins_with_errors_by_the_field_and_secrets_once(app, telegram_api):
    with app.app_context():
        channel_id = add_channel("telegram", "Shop bot", {
            "token": "123456:TEST-token", "mode": "webhook", "secret_token": "s3cret-token",
            "api_base_url": telegram_api.base_url, "public_url": "https://inbox.example.com"},
            teams=["Support"]).id
        db.session.commit()
        h.agent("agent@example.com", "Agent", ["Support"])
        h.agent("boss@example.com", "Босс", ["Support"], role="admin")
    agent = app.test_client()
    assert _login(agent, "agent@example.com", h.PASSWORD).status_code == 302
    refused = agent.get("/settings/bots")
    assert refused.status_code == 403 and "Admins only" in refused.get_data(as_text=True)

    admin = app.test_client()
    assert _login(admin, "boss@example.com", h.PASSWORD).status_code == 302
    assert 'href="/settings/bots"' in admin.get("/settings").get_data(as_text=True)
    page = admin.get("/settings/bots").get_data(as_text=True)
    assert "No bots yet." in page
    bad = admin.post("/settings/bots", data={"csrf_token": _csrf(page), "name": "Order bot",
                                             "url": "ftp://bot.example.com",
                                             "timeout_seconds": "10",
                                             "channel_ids": [str(channel_id)]})
    assert bad.status_code == 422
    text = bad.get_data(as_text=True)
    assert "An http(s) URL this server may call" in text and 'value="Order bot"' in text
    none = admin.post("/settings/bots", data={"csrf_token": _csrf(page), "name": "Order bot",
                                              "url": "https://bot.example.com/threadline",
                                              "timeout_seconds": "10"})
    assert none.status_code == 422 and "Pick at least one channel." in none.get_data(as_text=True)
    assert _bots(app) == []

    created = admin.post("/settings/bots", data={
        "csrf_token": _csrf(page), "name": "Order bot", "url": "https://bot.example.com/threadline",
        "timeout_seconds": "5", "channel_ids": [str(channel_id)]})
    assert created.status_code == 201
    text = created.get_data(as_text=True)
    token = re.search(r'id="bot-token">([^<]+)<', text).group(1)
    (bot,) = _bots(app)
    assert token.startswith("tl_") and bot.secret in text and bot.timeout_seconds == 5
    again = admin.get("/settings/bots").get_data(as_text=True)
    assert bot.secret not in again and token not in again and "Order bot" in again
    # in Russian too
    ru = admin.get("/settings/bots", headers={"Accept-Language": "ru"}).get_data(as_text=True)
    assert "Боты" in ru

    with app.app_context():
        h.inbound(db.session.get(Channel,
                                 channel_id), 4242, "Привет")
        held = db.session.scalar(select(func.count(Conversation.id)).where(
            Conversation.handled_by == f"bot:{bot.id}"))
        db.session.commit()
    assert held == 1
    paused = admin.post(f"/settings/bots/{bot.id}/active",
                        data={"csrf_token": _csrf(again), "active": "false"})
    assert paused.status_code == 302
    with app.app_context():
        held = db.session.scalar(select(func.count(Conversation.id)).where(
            Conversation.handled_by.is_not(None)))
        db.session.commit()
    assert held == 0 and _bots(app)[0].active is False
    deleted = admin.post(f"/settings/bots/{bot.id}/delete", data={"csrf_token": _csrf(again)})
    assert deleted.status_code == 302 and _bots(app) == []
