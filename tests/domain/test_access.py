"""Who sees what: an agent sees only conversations of channels their teams can access, on
the page, through the API and through Socket.IO; an admin sees everything."""
from __future__ import annotations

import pytest

from tests import inbox_helpers as h
from tests.conftest import AgentSocket, login_session
from tests.inbox_helpers import telegram_post


@pytest.fixture
def world(ctx, admin, telegram_api):
    support, sales = h.channels(telegram_api)
    alice = h.agent("alice@example.com", "Alice Support", ["Support"])
    bob = h.agent("bob@example.com", "Bob Sales", ["Sales"])
    visible = h.inbound(support, 501, "Где мой заказ?", "Ольга")
    hidden = h.inbound(sales, 502, "Wholesale price list please", "Grace")
    h.reset_login_limit()
    return {"support": support, "sales": sales, "alice": alice, "bob": bob,
            "visible": h.conversation_of(visible), "hidden": h.conversation_of(hidden)}


def bearer(value: str) -> dict:
    return {"Authorization": f"Bearer {value}"}


def test_api_shows_an_agent_only_their_channels(app, world):
    client = app.test_client()
    auth = bearer(h.token(world["alice"]))
    listed = client.get("/api/v1/conversations?status=all", headers=auth).json["items"]
    assert [c["id"] for c in listed] == [world["visible"].id]
    hidden_id = world["hidden"].id
    assert client.get(f"/api/v1/conversations/{hidden_id}", headers=auth).status_code == 404
    assert client.get(f"/api/v1/conversations/{hidden_id}/messages", headers=auth).status_code == 404
    assert client.get(f"/api/v1/conversations/{hidden_id}/timeline", headers=auth).status_code == 404
    assert client.post(f"/api/v1/conversations/{hidden_id}/messages", json={"text": "x"},
                       headers=auth).status_code == 404
    assert client.patch(f"/api/v1/conversations/{hidden_id}", json={"status": "resolved"},
                        headers=auth).status_code == 404
    assert client.post("/api/v1/conversations/bulk", json={"ids": [hidden_id], "priority": "high"},
                       headers=auth).status_code == 404
    events = client.get("/api/v1/events?after=0", headers=auth).json["items"]
    assert events and all(e["data"].get("conversation_id", e["data"].get("id")) != hidden_id
                          for e in events if e["type"].startswith(("message.", "conversation.")))
    assert "Wholesale" not in client.get("/api/v1/events?after=0", headers=auth).get_data(as_text=True)
    found = client.get("/api/v1/search?q=wholesale", headers=auth).json
    assert found["messages"] == [] and found["customers"] == []
    views = client.get("/api/v1/inbox/views", headers=auth).json["counts"]
    assert views["open"] == 1 and f"channel:{world['sales'].id}" not in views
    boot = client.get("/api/v1/inbox/bootstrap", headers=auth).json
    assert [c["id"] for c in boot["channels"]] == [world["support"].id]
    # the admin sees both
    admin_auth = bearer(h.token(db_admin()))
    both = client.get("/api/v1/conversations?status=all", headers=admin_auth).json["items"]
    assert {c["id"] for c in both} == {world["visible"].id, hidden_id}


def db_admin():
    from sqlalchemy import select

    from app.infra.models import Agent
    from app.infra.state import db

    return db.session.scalar(select(Agent).where(Agent.role == "admin"))


def test_page_deep_link_is_404_for_a_conversation_the_agent_may_not_see(app, world):
    client = app.test_client()
    page = client.get("/login")
    import re

    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    login = client.post("/login", data={"email": "alice@example.com", "password": h.PASSWORD,
                                        "csrf_token": csrf})
    assert login.status_code == 302
    assert client.get(f"/conversations/{world['visible'].id}").status_code == 200
    assert client.get(f"/conversations/{world['hidden'].id}").status_code == 404
    assert client.get("/conversations/999999").status_code == 404


def test_login_form_needs_its_csrf_token(app, world):
    client = app.test_client()
    response = client.post("/login", data={"email": "alice@example.com", "password": h.PASSWORD})
    assert response.status_code == 400


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_socket_rooms_follow_channel_access(backend, ctx, admin, telegram_api, start_server):
    from tests.conftest import release_db

    support, sales = h.channels(telegram_api)
    h.agent("alice@example.com", "Alice Support", ["Support"])
    h.agent("bob@example.com", "Bob Sales", ["Sales"])
    h.reset_login_limit()
    release_db()
    server = start_server()
    alice = login_session(server.url, "alice@example.com", h.PASSWORD)
    bob = login_session(server.url, "bob@example.com", h.PASSWORD)
    alice_socket, bob_socket = AgentSocket(server.url, alice), AgentSocket(server.url, bob)
    try:
        telegram_post(server, sales, "sales-secret", 9001, 502, "Wholesale price list please", "Grace")
        hidden = bob_socket.wait_for("message.created", lambda d: d["data"]["text"].startswith("Wholesale"))
        telegram_post(server, support, "support-secret", 9002, 501, "Алло?", "Ольга")
        visible = alice_socket.wait_for("message.created", lambda d: d["data"]["text"] == "Алло?")
        hidden_id, visible_id = hidden["data"]["conversation_id"], visible["data"]["conversation_id"]
        texts = [d["data"].get("text") for e, d in alice_socket.events if e.startswith("message.")]
        assert texts == ["Алло?"]
        assert all(d["data"]["id"] != hidden_id for e, d in alice_socket.events
                   if e.startswith("conversation."))
        # joining the room of a conversation alice may not see is refused
        denied = alice_socket.client.call("view", {"conversation_id": hidden_id},
                                          namespace="/agents", timeout=10)
        assert denied == {"ok": False, "error": "conversation not found"}
        allowed = alice_socket.client.call("view", {"conversation_id": visible_id},
                                           namespace="/agents", timeout=10)
        assert allowed["ok"] is True and allowed["viewers"][0]["name"] == "Alice Support"
        refused = alice_socket.client.call("typing", {"conversation_id": hidden_id, "typing": True},
                                           namespace="/agents", timeout=10)
        assert refused["ok"] is False
        # bob views and types in his conversation: alice, not in that room, hears nothing of it
        assert bob_socket.client.call("view", {"conversation_id": hidden_id}, namespace="/agents",
                                      timeout=10)["ok"] is True
        bob_socket.client.call("typing", {"conversation_id": hidden_id, "typing": True},
                               namespace="/agents", timeout=10)
        bob_socket.wait_for("presence", lambda d: d["data"]["viewers"]
                            and d["data"]["viewers"][0]["typing"])
        # then alice types in her own conversation: once she hears that later presence, bob's
        # earlier one would have reached her first had she been in his room
        assert alice_socket.client.call("typing", {"conversation_id": visible_id, "typing": True},
                                        namespace="/agents", timeout=10)["ok"] is True
        alice_socket.wait_for("presence", lambda d: d["data"]["conversation_id"] == visible_id
                              and d["data"]["viewers"] and d["data"]["viewers"][0]["typing"])
        assert not [d for e, d in alice_socket.events
                    if e == "presence" and d["data"]["conversation_id"] == hidden_id]
        # the API agrees: 404 for alice, the event log leaves it out
        assert alice.get(f"{server.url}/api/v1/conversations/{hidden_id}").status_code == 404
        missed = alice.get(f"{server.url}/api/v1/events?after=0").json()["items"]
        texts = [e["data"].get("text") for e in missed]
        assert "Алло?" in texts and not [t for t in texts if t and "Wholesale" in t]
        assert alice.get(f"{server.url}/conversations/{hidden_id}").status_code == 404
    finally:
        alice_socket.close()
        bob_socket.close()
