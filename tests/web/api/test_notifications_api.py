"""Notifications: mentions in notes (who is notified, who cannot see the channel), assignments,
new messages folded per conversation, the Mentions view, marking read, options."""
from __future__ import annotations

import pytest

from app.infra.models import Message
from app.infra.state import db
from tests import inbox_helpers as h


@pytest.fixture
def setup(ctx, admin, admin_token, telegram_api):
    return h.channels(telegram_api)


class As:
    """The API as one agent (their Bearer token)."""

    def __init__(self, app, agent):
        self.client, self.token = app.test_client(), h.token(agent)

    def _headers(self):
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path):
        return self.client.get(f"/api/v1{path}", headers=self._headers())

    def post(self, path, json=None):
        return self.client.post(f"/api/v1{path}", json=json, headers=self._headers())

    def patch(self, path, json=None):
        return self.client.patch(f"/api/v1{path}", json=json, headers=self._headers())

    def put(self, path, json=None):
        return self.client.put(f"/api/v1{path}", json=json, headers=self._headers())


def test_mentions_notify_only_active_agents_who_see_the_channel(app, api, setup):
    support, _sales = setup
    anna = h.agent("anna@example.com", "Анна Соколова", ["Support"])
    lukasz = h.agent("lukasz@example.com", "Łukasz Zieliński", ["Support"])
    bob = h.agent("bob@example.com", "Bob Sales", ["Sales"])
    gone = h.agent("gone@example.com", "Gone Away", ["Support"])
    gone.active = False
    db.session.commit()
    conversation_id = h.inbound(support, 810, "Где заказ?", "Пётр").conversation_id
    note = api.post(f"/conversations/{conversation_id}/notes", json={
        "text": "@Анна и @łukasz, гляньте; @gone тоже", "mentions": [bob.id, gone.id, 99999]})
    assert note.status_code == 201, note.json
    meta = note.json["meta"]
    assert sorted(meta["mentions"]) == sorted([anna.id, lukasz.id, bob.id])
    # bob is in Sales: the note names him, he is not told, the author is
    assert meta["mentions_unreachable"] == [{"id": bob.id, "name": "Bob Sales"}]
    stored = db.session.get(Message, note.json["id"])
    assert sorted(stored.meta["mentions"]) == sorted([anna.id, lukasz.id, bob.id])

    as_anna, as_bob = As(app, anna), As(app, bob)
    page = as_anna.get("/notifications").json
    assert page["unread"] == 1 and page["next_cursor"] is None
    item = page["items"][0]
    assert item["kind"] == "mention" and item["conversation_id"] == conversation_id
    assert item["customer_name"] == "Пётр" and item["actor_name"] and item["read"] is False
    assert item["text"].startswith("@Анна")
    assert as_bob.get("/notifications").json == {"items": [], "next_cursor": None, "unread": 0}
    assert As(app, lukasz).get("/notifications").json["unread"] == 1
    # a second note without mentions tells nobody; naming oneself is no mention
    as_anna.post(f"/conversations/{conversation_id}/notes", json={"text": "@anna смотрю"})
    assert as_anna.get("/notifications").json["unread"] == 1

    mentions = as_anna.get("/mentions").json
    assert mentions["unread"] == 1
    assert [(i["conversation"]["id"], i["unread"]) for i in mentions["items"]] == [(conversation_id, 1)]
    marked = as_anna.post("/notifications/read", json={"ids": mentions["items"][0]["ids"]}).json
    assert marked == {"marked": 1, "unread": 0}
    assert as_anna.get("/mentions").json["items"][0]["unread"] == 0
    assert as_anna.get("/notifications").json["items"][0]["read"] is True
    # someone else's ids mark nothing
    assert As(app, lukasz).post("/notifications/read", json={"ids": [item["id"] + 1000]}).json["marked"] == 0
    assert as_anna.post("/notifications/read", json={}).status_code == 422


def test_assignment_and_new_messages_notify_the_assignee(app, api, setup):
    support, _sales = setup
    anna = h.agent("anna@example.com", "Анна Соколова", ["Support"])
    as_anna = As(app, anna)
    first = h.inbound(support, 820, "Первый вопрос", "Вера").conversation_id
    second = h.inbound(support, 821, "Второй вопрос", "Олег").conversation_id
    assert api.patch(f"/conversations/{first}", json={"assignee_id": anna.id}).status_code == 200
    # assigning oneself is no news
    assert as_anna.patch(f"/conversations/{second}", json={"assignee_id": anna.id}).status_code == 200
    items = as_anna.get("/notifications").json["items"]
    assert [(i["kind"], i["conversation_id"]) for i in items] == [("assigned", first)]
    assert items[0]["actor_name"] is not None

    h.inbound(support, 820, "Ещё вопрос", "Вера")
    h.inbound(support, 820, "И ещё один", "Вера")
    page = as_anna.get("/notifications?kind=message").json
    # two new messages of one conversation: one notification, counted
    assert [(i["conversation_id"], i["count"], i["text"]) for i in page["items"]] == [(first, 2, "И ещё один")]
    both = as_anna.get("/notifications?limit=1").json
    assert len(both["items"]) == 1 and both["next_cursor"] and both["unread"] == 2
    rest = as_anna.get(f"/notifications?limit=1&cursor={both['next_cursor']}").json
    assert rest["items"][0]["id"] < both["items"][0]["id"]
    assert as_anna.get("/notifications?cursor=abc").status_code == 422
    assert as_anna.post("/notifications/read", json={"all": True}).json == {"marked": 2, "unread": 0}
    # once read, the next message starts a new notification
    h.inbound(support, 820, "Ау?", "Вера")
    assert [i["count"] for i in as_anna.get("/notifications?unread=true").json["items"]] == [1]


def test_notification_options_are_saved_per_agent(app, api, setup):
    anna = h.agent("anna@example.com", "Анна Соколова", ["Support"])
    as_anna = As(app, anna)
    assert as_anna.get("/notifications/settings").json == {"sound": False, "title_badge": True}
    saved = as_anna.put("/notifications/settings", json={"sound": True, "title_badge": False})
    assert saved.json == {"sound": True, "title_badge": False}
    assert as_anna.get("/notifications/settings").json == {"sound": True, "title_badge": False}
    assert api.get("/notifications/settings").json == {"sound": False, "title_badge": True}
    assert as_anna.put("/notifications/settings", json={"sound": "loud"}).status_code == 422


def test_notification_created_reaches_that_agent_only(backend, ctx, admin, telegram_api,
                                                      start_server):
    """A real server (through Redis on PostgreSQL): the mentioned agent's browsers get
    `notification.created`; another agent of the same channel hears nothing of it."""
    import requests

    from tests.conftest import AgentSocket, login_session, release_db

    support, _sales = h.channels(telegram_api)
    h.agent("anna@example.com", "Анна Соколова", ["Support"])
    h.agent("boris@example.com", "Boris Agent", ["Support"])
    conversation_id = h.inbound(support, 830, "Нужна помощь", "Пётр").conversation_id
    h.reset_login_limit()
    release_db()
    server = start_server()
    anna, boris = (login_session(server.url, f"{n}@example.com", h.PASSWORD) for n in ("anna", "boris"))
    anna_socket, boris_socket = AgentSocket(server.url, anna), AgentSocket(server.url, boris)
    try:
        note = boris.post(f"{server.url}/api/v1/conversations/{conversation_id}/notes",
                          json={"text": "@Анна посмотри"}, timeout=30)
        assert note.status_code == 201, note.text
        got = anna_socket.wait_for("notification.created")
        assert got["data"]["kind"] == "mention" and got["data"]["conversation_id"] == conversation_id
        assert got["data"]["actor_name"] == "Boris Agent" and got["data"]["customer_name"] == "Пётр"
        # boris saw the note itself (message.created) but no notification
        boris_socket.wait_for("message.created", lambda d: d["data"]["direction"] == "note")
        assert not [e for e, _ in boris_socket.events if e == "notification.created"]
        assert requests.get(f"{server.url}/api/v1/notifications", cookies=anna.cookies,
                            timeout=30).json()["unread"] == 1
    finally:
        anna_socket.close()
        boris_socket.close()
