"""Sessions can be revoked (issue 14, High 3): sign-out, password change, deactivation and an
admin's sign-out end every session, remember cookie and socket of the agent; cookies are
SameSite=Lax, Secure behind https, and the remember cookie lasts `security.remember_days`."""
from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
import socketio

from app.infra.models import Agent
from app.infra.state import db
from tests import inbox_helpers as h
from tests.conftest import AgentSocket, login_session, wait_until

EMAIL = "anna@example.com"


@pytest.fixture
def anna(app):
    """Outside an app context on purpose: test client requests then get their own (with
    one pushed they would share `g`, and Flask-Login's cached user with it)."""
    with app.app_context():
        agent = h.agent(EMAIL, "Анна Агент", ["Support"])
        db.session.expunge(agent)
    h.reset_login_limit()
    return agent


@pytest.fixture
def admin_agent(app):
    with app.app_context():
        from app.domain.agents import create_agent

        agent = create_agent("admin@example.com", "Админ", h.PASSWORD, role="admin")
        db.session.commit()
        return {"id": agent.id, "token": h.token(agent)}


def _csrf(client, path="/login") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _sign_in(app, remember=False):
    client = app.test_client()
    data = {"email": EMAIL, "password": h.PASSWORD, "csrf_token": _csrf(client)}
    if remember:
        data["remember"] = "1"
    response = client.post("/login", data=data)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    return client


def _signed_in(client) -> bool:
    response = client.get("/")
    assert response.status_code in (200, 302)
    return response.status_code == 200


def _only_remember_cookie(app, client):
    """A new browser with nothing but the remember cookie of `client`."""
    fresh = app.test_client()
    cookie = client.get_cookie("remember_token")
    assert cookie is not None
    fresh.set_cookie("remember_token", cookie.value)
    return fresh


def test_sign_out_ends_every_session_and_remember_cookie(app, anna):
    first, second = _sign_in(app), _sign_in(app, remember=True)
    remembered = _only_remember_cookie(app, second)
    assert _signed_in(first) and _signed_in(second) and _signed_in(remembered)
    old_remember = second.get_cookie("remember_token").value

    first.post("/logout", data={"csrf_token": _csrf(first, "/account")})
    assert not _signed_in(first)
    assert not _signed_in(second)
    assert not _signed_in(remembered)
    # signing in again gives a new remember cookie; the old one stays dead
    again = _sign_in(app, remember=True)
    assert _signed_in(again)
    assert again.get_cookie("remember_token").value != old_remember
    stale = app.test_client()
    stale.set_cookie("remember_token", old_remember)
    assert not _signed_in(stale)


def test_password_change_keeps_only_the_session_that_changed_it(app, anna):
    changer, other = _sign_in(app, remember=True), _sign_in(app, remember=True)
    response = changer.post("/account", data={
        "csrf_token": _csrf(changer, "/account"), "action": "password",
        "current_password": h.PASSWORD, "new_password": "новый-пароль-2026",
        "confirm_password": "новый-пароль-2026"})
    assert response.status_code == 302
    assert _signed_in(changer)
    assert _signed_in(_only_remember_cookie(app, changer))
    assert not _signed_in(other)
    assert not _signed_in(_only_remember_cookie(app, other))


def test_sign_out_everywhere_button_and_admin_api(app, admin_agent, anna):
    first, second = _sign_in(app), _sign_in(app)
    response = first.post("/account", data={"csrf_token": _csrf(first, "/account"),
                                            "action": "sign_out_everywhere"})
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert not _signed_in(first) and not _signed_in(second)

    client = _sign_in(app)
    with app.app_context():
        as_boris = {"Authorization": f"Bearer {h.token(h.agent('boris@example.com', 'Boris', ['Support']))}"}
        as_anna = {"Authorization": f"Bearer {h.token(db.session.get(Agent, anna.id))}"}
    assert client.post(f"/api/v1/agents/{anna.id}/sign-out", headers=as_boris).status_code == 403
    assert _signed_in(client)
    as_admin = {"Authorization": f"Bearer {admin_agent['token']}"}
    assert client.post("/api/v1/agents/999999/sign-out", headers=as_admin).status_code == 404
    assert client.post(f"/api/v1/agents/{anna.id}/sign-out", headers=as_admin).status_code == 204
    assert not _signed_in(client)
    # an agent may sign themselves out; their API token keeps working
    client = _sign_in(app)
    assert client.post(f"/api/v1/agents/{anna.id}/sign-out", headers=as_anna).status_code == 204
    assert not _signed_in(client)
    assert client.get("/api/v1/conversations", headers=as_anna).status_code == 200


def test_deactivation_ends_sessions_for_good(app, anna):
    client = _sign_in(app, remember=True)
    remembered = _only_remember_cookie(app, client)
    with app.app_context():
        db.session.get(Agent, anna.id).active = False
        db.session.commit()
    assert not _signed_in(client)
    with app.app_context():
        db.session.get(Agent, anna.id).active = True
        db.session.commit()
    assert not _signed_in(client) and not _signed_in(remembered)


@pytest.mark.parametrize("public_url,secure", [("https://inbox.example.com", True),
                                               ("http://127.0.0.1:8000", False)])
def test_cookie_flags(app_config, public_url, secure, backend):
    from app import create_app

    config = {**app_config, "server": {**app_config["server"], "public_url": public_url},
              "security": {**app_config["security"], "remember_days": 7}}
    flask_app = create_app(config)
    try:
        with flask_app.app_context():
            from app.domain.agents import create_agent

            create_agent(EMAIL, "Anna", h.PASSWORD)
            db.session.commit()
        h.reset_login_limit()
        client = flask_app.test_client()
        response = client.post("/login", data={"email": EMAIL, "password": h.PASSWORD,
                                               "remember": "1", "csrf_token": _csrf(client)})
        cookies = {c.split("=", 1)[0]: c for c in response.headers.getlist("Set-Cookie")}
        assert set(cookies) >= {"session", "remember_token"}
        for value in cookies.values():
            assert "SameSite=Lax" in value and "HttpOnly" in value
            assert ("; Secure" in value) is secure
        expires = re.search(r"Expires=([^;]+)", cookies["remember_token"]).group(1)
        days = (datetime.strptime(expires, "%a, %d %b %Y %H:%M:%S GMT")
                .replace(tzinfo=timezone.utc) - datetime.now(timezone.utc)).days
        assert 6 <= days <= 7
    finally:
        flask_app.extensions["threadline.db"].dispose()


def test_sign_out_disconnects_open_sockets_in_every_process(app, anna, backend, start_server):
    """The socket of another browser (on another web process when there is Redis) is
    disconnected by the sign-out, and cannot connect again with its old cookies."""
    first = start_server()
    second = start_server() if backend == "postgres" else first
    browser_a = login_session(first.url, EMAIL, h.PASSWORD)
    browser_b = login_session(second.url, EMAIL, h.PASSWORD)
    socket_b = AgentSocket(second.url, browser_b)
    bystander = AgentSocket(second.url, login_session(second.url, EMAIL, h.PASSWORD))
    try:
        assert socket_b.client.connected
        response = browser_a.post(f"{first.url}/logout", timeout=10)
        assert response.status_code == 200 and response.url.endswith("/login")
        wait_until(lambda: not socket_b.client.connected and not bystander.client.connected,
                   message="sockets disconnected")
        with pytest.raises(socketio.exceptions.ConnectionError):
            AgentSocket(second.url, browser_b)
        assert browser_b.get(f"{second.url}/", timeout=10).url.endswith("/login?next=%2F")
    finally:
        socket_b.close()
        bystander.close()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_every_socket_event_checks_the_session(app, anna, backend, start_server):
    """A socket the sign-out could not reach (the generation raised by another process with
    no message queue between them) is refused on its next event."""
    from app.domain.agents import end_sessions

    server = start_server()
    browser = login_session(server.url, EMAIL, h.PASSWORD)
    sock = AgentSocket(server.url, browser)
    try:
        answer = sock.client.call("view", {"conversation_id": None}, namespace="/agents", timeout=10)
        assert answer == {"ok": True, "viewers": []}
        with app.app_context():  # this test process: its own Socket.IO server, not the server's
            end_sessions(db.session.get(Agent, anna.id))
            db.session.commit()
        answer = sock.client.call("view", {"conversation_id": None}, namespace="/agents", timeout=10)
        assert answer == {"ok": False, "error": "signed out"}
    finally:
        sock.close()
