"""The realtime tier (issue 15): `threadline realtime` holds the agents' and visitors'
websockets in an asyncio process; `threadline serve` answers HTTP; this test process is the
worker (its events travel through the install's Redis channel). PostgreSQL + Redis only: the
realtime process needs Redis.

Covered: the session cookie of the HTTP server authenticates the socket (no second login) and
keeps the access rules (an agent gets only their channels' rooms), a worker's event after
commit reaches the agent, presence, the catch-up after a reconnect, logout and revocation
disconnect, and the site-chat visitor's round trip."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import requests
import socketio

from tests import inbox_helpers as h
from tests.conftest import (
    SCALE_OUT,
    AgentSocket,
    RunningServer,
    free_port,
    login_session,
    release_db,
    run_jobs,
    wait_until,
)

pytestmark = pytest.mark.parametrize("backend", SCALE_OUT)


def RunningRealtime(config: dict[str, Any], log_path: Path,
                    env: dict[str, str] | None = None) -> RunningServer:
    """`threadline realtime` in a subprocess on a free port."""
    return RunningServer(config, log_path, env, command="realtime")


@pytest.fixture
def tier(app_config, tmp_path, start_server):
    """An HTTP server (threading serve, for logins and the API) and the realtime process."""
    release_db()
    server = start_server()
    realtime = RunningRealtime(app_config, tmp_path / "realtime.log")
    yield server, realtime
    realtime.stop()


def _texts(socket: AgentSocket) -> list[str]:
    return [d["data"].get("text") for e, d in socket.events if e == "message.created"]


def _connect(realtime, session) -> AgentSocket:
    return AgentSocket(realtime.url, session)


def test_realtime_keeps_access_rules_and_hears_the_worker(backend, ctx, admin, telegram_api,
                                                           tier):
    server, realtime = tier
    support, sales = h.channels(telegram_api)
    h.agent("alice@example.com", "Alice Support", ["Support"])
    h.agent("bob@example.com", "Bob Sales", ["Sales"])
    h.reset_login_limit()
    release_db()
    alice_http = login_session(server.url, "alice@example.com", h.PASSWORD)
    alice = _connect(realtime, alice_http)
    bob = _connect(realtime, login_session(server.url, "bob@example.com", h.PASSWORD))
    try:
        # applied by this process, as by a worker: after commit, through Redis, to realtime
        h.inbound(sales, 602, "Hurtowe ceny, proszę")
        bob.wait_for("message.created", lambda d: d["data"]["text"] == "Hurtowe ceny, proszę")
        support_message = h.inbound(support, 601, "Где мой заказ?")
        alice.wait_for("message.created", lambda d: d["data"]["text"] == "Где мой заказ?")
        # the Sales message, emitted before, never reached alice; nor Support's bob
        assert _texts(alice) == ["Где мой заказ?"]
        assert "Где мой заказ?" not in _texts(bob)

        # presence: alice may view her team's conversation, not Sales'
        sales_conversation = h.conversation_of(
            h.inbound(sales, 603, "Jeszcze jedno")).id
        support_conversation = support_message.conversation_id
        release_db()
        refused = alice.client.call("view", {"conversation_id": sales_conversation},
                                    namespace="/agents", timeout=10)
        assert refused == {"ok": False, "error": "conversation not found"}
        viewing = alice.client.call("view", {"conversation_id": support_conversation},
                                    namespace="/agents", timeout=10)
        assert viewing["ok"] and [v["name"] for v in viewing["viewers"]] == ["Alice Support"]
        assert alice.client.call("typing", {"conversation_id": support_conversation,
                                            "typing": True}, namespace="/agents",
                                 timeout=10) == {"ok": True}
        alice.wait_for("presence", lambda d: d["data"]["viewers"][:1] == [
            {"agent_id": viewing["viewers"][0]["agent_id"], "name": "Alice Support",
             "typing": True}])
        assert not [d for e, d in bob.events if e == "presence"]

        # the connection is counted (availability) and uncounted on disconnect
        from app.infra.models import Agent
        from app.infra.state import db

        def connections(email: str) -> int:
            db.session.expire_all()
            value = db.session.query(Agent).filter_by(email=email).one().connections
            release_db()
            return value

        assert connections("alice@example.com") == 1
        alice.close()
        wait_until(lambda: connections("alice@example.com") == 0, message="uncounted")
    finally:
        alice.close()
        bob.close()


def test_realtime_refuses_without_a_session_or_from_another_origin(backend, ctx, admin, tier):
    server, realtime = tier
    release_db()
    client = socketio.Client(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect(realtime.url, namespaces=["/agents"], transports=["websocket"],
                       wait_timeout=10)
    session = login_session(server.url, "admin@example.com", "correct horse battery")
    cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    evil = socketio.Client(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        evil.connect(realtime.url, namespaces=["/agents"], transports=["websocket"],
                     headers={"Cookie": cookie, "Origin": "https://evil.example"},
                     wait_timeout=10)
    # a tampered cookie is no session
    forged = socketio.Client(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        forged.connect(realtime.url, namespaces=["/agents"], transports=["websocket"],
                       headers={"Cookie": re.sub(r"session=.", "session=x", cookie)},
                       wait_timeout=10)


def test_catch_up_after_reconnect_through_realtime(backend, ctx, admin, telegram_api, tier):
    server, realtime = tier
    support, _sales = h.channels(telegram_api)
    h.reset_login_limit()
    release_db()
    session = login_session(server.url, "admin@example.com", "correct horse battery")
    first = _connect(realtime, session)
    h.inbound(support, 701, "Первое")
    seen = first.wait_for("message.created", lambda d: d["data"]["text"] == "Первое")
    last_id = seen["id"]
    first.close()
    # while the browser is away
    h.inbound(support, 702, "Пока вас не было")
    release_db()
    second = _connect(realtime, session)
    try:
        # what the page does on reconnect: GET /events after the last event it applied
        missed = session.get(f"{server.url}/api/v1/events", params={"after": last_id},
                             timeout=10).json()["items"]
        assert "Пока вас не было" in [e["data"].get("text") for e in missed
                                       if e["type"] == "message.created"]
        assert all(e["id"] > last_id for e in missed)
        # and the new socket is live again
        h.inbound(support, 703, "Снова на связи")
        second.wait_for("message.created", lambda d: d["data"]["text"] == "Снова на связи")
        assert "Пока вас не было" not in _texts(second)
    finally:
        second.close()


def test_logout_and_revocation_disconnect_realtime_sockets(backend, ctx, admin, tier):
    server, realtime = tier
    h.agent("carol@example.com", "Carol", ["Support"])
    h.reset_login_limit()
    release_db()
    # the page's own `logout` event
    session = login_session(server.url, "carol@example.com", h.PASSWORD)
    own = _connect(realtime, session)
    own.client.emit("logout", namespace="/agents")
    wait_until(lambda: not own.client.connected, message="logout disconnects")

    # signing out everywhere (another tab, the HTTP server) ends the live socket here
    tabs = [_connect(realtime, session), _connect(realtime, session)]
    page = session.get(f"{server.url}/account", timeout=10)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    response = session.post(f"{server.url}/account", data={
        "action": "sign_out_everywhere", "csrf_token": csrf}, timeout=10)
    assert response.status_code == 200
    for tab in tabs:
        wait_until(lambda: not tab.client.connected, message="revoked socket disconnected")
    # and the old cookie opens no new one
    with pytest.raises(socketio.exceptions.ConnectionError):
        _connect(realtime, session)


def test_widget_visitor_round_trip_through_realtime(backend, app, ctx, admin, tier):
    from app.domain.channels import add_channel
    from app.infra.models import Message
    from app.infra.state import db
    from app.usecases.outbox import enqueue_reply

    server, realtime = tier
    shop = "https://shop.example"
    channel = add_channel("webchat", "Site chat", {"allowed_origins": shop})
    db.session.commit()
    agent = _connect(realtime, login_session(server.url, "admin@example.com",
                                             "correct horse battery"))
    page = requests.get(f"{server.url}/widget/frame?c={channel.public_id}",
                        headers={"Referer": f"{shop}/"}, timeout=10)
    frame = re.search(r'"frame": "([^"]+)"', page.text).group(1)

    received: list[tuple[str, Any]] = []
    visitor = socketio.Client(reconnection=False)
    visitor.on("*", lambda event, data: received.append((event, data)), namespace="/widget")
    # a page of another site may not open the chat's socket
    evil = socketio.Client(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        evil.connect(realtime.url, namespaces=["/widget"], transports=["websocket"],
                     headers={"Origin": "https://copycat.example"},
                     auth={"frame": frame}, wait_timeout=10)
    with pytest.raises(socketio.exceptions.ConnectionError):
        evil.connect(realtime.url, namespaces=["/widget"], transports=["websocket"],
                     auth={"frame": "forged"}, wait_timeout=10)
    visitor.connect(realtime.url, namespaces=["/widget"], transports=["websocket"],
                    auth={"frame": frame, "lang": "pl"}, wait_timeout=10)
    try:
        session = wait_until(lambda: next((d for e, d in received if e == "session"), None),
                             message="widget session")
        assert session["messages"] == [] and session["visitor"]
        ack = visitor.call("message", {"text": "Czy młynek jest dostępny?"},
                           namespace="/widget", timeout=15)
        assert ack["ok"] and ack["message"]["text"] == "Czy młynek jest dostępny?"
        # the agent hears the visitor's message through the realtime process
        agent.wait_for("message.created",
                       lambda d: d["data"]["text"] == "Czy młynek jest dostępny?")
        # the agent answers; the worker (this process) sends it to the visitor's room
        db.session.expire_all()
        conversation = db.session.get(Message, ack["message"]["id"]).conversation
        enqueue_reply(db.session, conversation, db.session.merge(admin), "Tak, mamy 3 sztuki")
        db.session.commit()
        run_jobs(app)
        pushed = wait_until(lambda: [d for e, d in received if e == "thread.message"
                                     and d.get("direction") == "out"], message="reply pushed")
        assert pushed[0]["text"] == "Tak, mamy 3 sztuki"
        history = visitor.call("history", {"after": 0}, namespace="/widget", timeout=10)
        assert [m["text"] for m in history["messages"]] == [
            "Czy młynek jest dostępny?", "Tak, mamy 3 sztuki"]
    finally:
        visitor.disconnect()
        agent.close()


def test_several_http_processes_with_the_realtime_tier(backend, ctx, admin, app_config,
                                                       telegram_api, tmp_path):
    """`server.workers` = 2: two gunicorn HTTP processes share the port, the realtime process
    holds the sockets; a login made through one process authenticates everywhere."""

    support, _sales = h.channels(telegram_api)
    h.reset_login_limit()
    release_db()
    server = RunningServer(app_config, tmp_path / "server-workers.log",
                           env={"THREADLINE_SERVER_WORKERS": "2"})
    realtime = RunningRealtime(app_config, tmp_path / "realtime-workers.log")
    socket = None
    try:
        master = server.proc.pid
        wait_until(lambda: len(Path(f"/proc/{master}/task/{master}/children").read_text()
                               .split()) == 2, message="two HTTP worker processes")
        session = login_session(server.url, "admin@example.com", "correct horse battery")
        for _ in range(6):  # whichever process answers, the session holds
            assert session.get(f"{server.url}/api/v1/events/head", timeout=10).status_code == 200
        socket = _connect(realtime, session)
        h.inbound(support, 801, "Два процесса")
        socket.wait_for("message.created", lambda d: d["data"]["text"] == "Два процесса")
    finally:
        if socket is not None:
            socket.close()
        realtime.stop()
        server.stop()


def test_embedded_default_keeps_one_process(backend, app_config):
    """Without Redis: several HTTP processes and the realtime process are refused."""
    from tests.conftest import run_cli

    embedded = {**app_config, "redis_url": ""}
    refused = run_cli(embedded, "serve", "--port", str(free_port()),
                      env={"THREADLINE_SERVER_WORKERS": "2"}, timeout=60)
    assert refused.returncode != 0 and "server.workers > 1 needs redis_url" in refused.stderr
    refused = run_cli(embedded, "realtime", "--port", str(free_port()), timeout=60)
    assert refused.returncode != 0 and "redis_url is not set" in refused.stderr


def test_admin_changes_reach_realtime_sockets(backend, ctx, admin, admin_token, telegram_api,
                                              tier):
    """A team membership given by an admin on the HTTP server puts the agent's open socket
    on the realtime process into the team's channel room (Redis: enter_room travels on the
    queue); deactivating the agent drops the socket."""
    server, realtime = tier
    support, sales = h.channels(telegram_api)
    anna = h.agent("anna@example.com", "Anna Agent", ["Support"])
    h.reset_login_limit()
    release_db()
    headers = {"Authorization": f"Bearer {admin_token}"}
    teams = {t["name"]: t["id"] for t in requests.get(
        f"{server.url}/api/v1/teams", headers=headers, timeout=10).json()["items"]}
    socket = _connect(realtime, login_session(server.url, "anna@example.com", h.PASSWORD))
    try:
        h.inbound(sales, 901, "Sales one")
        h.inbound(support, 902, "Support one")
        socket.wait_for("message.created", lambda d: d["data"]["text"] == "Support one")
        assert "Sales one" not in _texts(socket)
        patched = requests.patch(f"{server.url}/api/v1/agents/{anna.id}", headers=headers,
                                 json={"team_ids": [teams["Support"], teams["Sales"]]},
                                 timeout=10)
        assert patched.status_code == 200, patched.text
        socket.wait_for("access.changed")
        h.inbound(sales, 903, "Sales two")
        socket.wait_for("message.created", lambda d: d["data"]["text"] == "Sales two")
        off = requests.patch(f"{server.url}/api/v1/agents/{anna.id}", headers=headers,
                             json={"active": False}, timeout=10)
        assert off.status_code == 200, off.text
        wait_until(lambda: not socket.client.connected, message="the socket to be dropped")
    finally:
        socket.close()


def test_widget_connects_are_limited_per_client_address_on_realtime(backend, ctx, app_config,
                                                                    tmp_path, start_server):
    """The per-address connect limit of the site chat (30 at once) holds on the realtime
    process, by the client's address: behind one trusted proxy (security.trusted_proxy_hops
    = 1), X-Forwarded-For names it, so another visitor is not refused with the first."""
    from app.domain.channels import add_channel
    from app.infra.state import db

    channel = add_channel("webchat", "Site chat", {"allowed_origins": "https://shop.example"})
    db.session.commit()
    server = start_server()
    realtime = RunningRealtime(app_config, tmp_path / "realtime-limits.log",
                               env={"THREADLINE_SECURITY_TRUSTED_PROXY_HOPS": "1"})
    page = requests.get(f"{server.url}/widget/frame?c={channel.public_id}",
                        headers={"Referer": "https://shop.example/"}, timeout=10)
    frame = re.search(r'"frame": "([^"]+)"', page.text).group(1)

    def connect(address: str) -> bool:
        client = socketio.Client(reconnection=False)
        try:
            client.connect(realtime.url, namespaces=["/widget"], transports=["websocket"],
                           headers={"X-Forwarded-For": address}, auth={"frame": frame},
                           wait_timeout=10)
        except socketio.exceptions.ConnectionError:
            return False
        client.disconnect()
        return True

    try:
        accepted = 0
        while connect("203.0.113.7"):  # 30 at once, then one per 2 s
            accepted += 1
            assert accepted <= 60, "never limited"
        assert accepted >= 30
        assert connect("198.51.100.9")  # another visitor behind the same proxy
    finally:
        realtime.stop()


def test_external_serve_only_publishes_and_its_events_reach_the_realtime_process(
        backend, ctx, admin, telegram_api, app_config, tmp_path):
    """`[realtime] external`: `serve` (two HTTP processes, the production layout) runs no
    Socket.IO server of its own (404 at /socket.io); an event its request emits, an agent's
    reply, still reaches the agent's socket on the realtime process through Redis."""

    support, _sales = h.channels(telegram_api)
    h.agent("alice@example.com", "Alice Support", ["Support"])
    h.reset_login_limit()
    release_db()
    server = RunningServer(app_config, tmp_path / "server-external.log",
                           {"THREADLINE_REALTIME_EXTERNAL": "true",
                            "THREADLINE_SERVER_WORKERS": "2"})
    realtime = RunningRealtime(app_config, tmp_path / "realtime.log")
    alice = None
    try:
        polling = requests.get(f"{server.url}/socket.io/", params={"EIO": "4",
                                                                  "transport": "polling"},
                               timeout=10)
        assert polling.status_code == 404
        alice_http = login_session(server.url, "alice@example.com", h.PASSWORD)
        alice = _connect(realtime, alice_http)
        conversation_id = h.inbound(support, 801, "Есть ли доставка в Казань?").conversation_id
        alice.wait_for("message.created",
                       lambda d: d["data"]["text"] == "Есть ли доставка в Казань?")
        release_db()
        # emitted by the web process handling the POST (after its commit), not by this one
        posted = alice_http.post(f"{server.url}/api/v1/conversations/{conversation_id}/messages",
                                 json={"text": "Да, в пределах 3 дней"}, timeout=10)
        assert posted.status_code in (200, 201), posted.text[:300]
        alice.wait_for("message.created",
                       lambda d: d["data"]["text"] == "Да, в пределах 3 дней")
    finally:
        if alice is not None:
            alice.close()
        realtime.stop()
        server.stop()
