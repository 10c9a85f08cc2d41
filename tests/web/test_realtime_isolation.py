"""Who hears which live event: room isolation between teams (quick, on both backends, over
the Redis message queue on PostgreSQL + Redis) and isolation between two installs that share
one Redis server (issue 14: Redis pub/sub ignores the db number, so the Socket.IO channel is
derived from the install)."""
from __future__ import annotations

import shutil

import pytest

from tests import inbox_helpers as h
from tests.conftest import (
    REDIS_URL,
    SCALE_OUT,
    AgentSocket,
    RunningServer,
    _config,
    login_session,
    release_db,
    run_cli,
)


def _message_texts(socket: AgentSocket) -> list[str]:
    return [d["data"].get("text") for e, d in socket.events if e == "message.created"]


def test_install_channel_is_derived_from_the_database(tmp_path):
    from app.infra.config import install_channel, load_config

    a = install_channel("postgresql://u:pw@db.example:5432/inbox_a")
    assert a.startswith("threadline-")
    # the same install, spelled with the driver or another password, is the same channel
    assert install_channel("postgresql+psycopg://u:other@db.example:5432/inbox_a") == a
    assert install_channel("postgresql://u:pw@db.example:5432/inbox_b") != a
    assert install_channel(f"sqlite:///{tmp_path}/a.db") != install_channel(f"sqlite:///{tmp_path}/b.db")
    config = load_config(path=tmp_path / "absent.toml", environ={
        "THREADLINE_DATABASE_URL": "postgresql://u:pw@db.example:5432/inbox_a"})
    assert config["realtime"]["channel"] == a
    config = load_config(path=tmp_path / "absent.toml", environ={
        "THREADLINE_REALTIME_CHANNEL": "shop-inbox"})
    assert config["realtime"]["channel"] == "shop-inbox"

    from app.web.sockets import socketio_options

    assert socketio_options({"redis_url": "redis://x/0", "realtime": {"channel": "c1"}})[
        "channel"] == "c1"


def test_socket_rooms_isolate_teams(backend, ctx, admin, telegram_api, start_server):
    """Quick: alice (Support) never hears a Sales message, bob (Sales) does. On PostgreSQL +
    Redis the messages are applied in this test process, as a worker would, so each event
    reaches the server's sockets through the Redis message queue."""
    support, sales = h.channels(telegram_api)
    h.agent("alice@example.com", "Alice Support", ["Support"])
    h.agent("bob@example.com", "Bob Sales", ["Sales"])
    h.reset_login_limit()
    release_db()
    server = start_server()
    alice = AgentSocket(server.url, login_session(server.url, "alice@example.com", h.PASSWORD))
    bob = AgentSocket(server.url, login_session(server.url, "bob@example.com", h.PASSWORD))

    def inbound(channel, secret, update_id, user_id, text):
        if backend == "sqlite":  # the server's own in-process worker applies it
            h.telegram_post(server, channel, secret, update_id, user_id, text)
        else:  # this process is the worker: its events go out through Redis
            h.inbound(channel, user_id, text)

    try:
        inbound(sales, "sales-secret", 7001, 602, "Hurtowe ceny, proszę")
        bob.wait_for("message.created", lambda d: d["data"]["text"] == "Hurtowe ceny, proszę")
        inbound(support, "support-secret", 7002, 601, "Где мой заказ?")
        # alice hears her team's message; the Sales one, emitted before it, never came
        alice.wait_for("message.created", lambda d: d["data"]["text"] == "Где мой заказ?")
        assert _message_texts(alice) == ["Где мой заказ?"]
        assert "Где мой заказ?" not in _message_texts(bob)  # not bob's team either
        bob_ids = {d["data"]["id"] for e, d in bob.events if e == "conversation.created"}
        assert not [d for e, d in alice.events
                    if e.startswith("conversation.") and d["data"]["id"] in bob_ids]
    finally:
        alice.close()
        bob.close()


@pytest.mark.parametrize("backend", SCALE_OUT)
def test_two_installs_on_one_redis_do_not_hear_each_other(backend, ctx, admin, app_config,
                                                           sqlite_template, telegram_api,
                                                           tmp_path):
    """Install A (PostgreSQL) and install B (its own SQLite database) share one Redis server
    and nothing else: B's admin hears B's events and none of A's."""
    support, _sales = h.channels(telegram_api)
    # install B: its own database, the same Redis
    b_dir = tmp_path / "install-b"
    b_dir.mkdir()
    shutil.copy(sqlite_template, b_dir / "threadline.db")
    config_b = _config(f"sqlite:///{b_dir / 'threadline.db'}", REDIS_URL, b_dir)
    assert config_b["realtime"]["channel"] != app_config["realtime"]["channel"]
    created = run_cli(config_b, "user", "create", "--email", "admin@b.example", "--name",
                      "Admin B", "--password", h.PASSWORD, "--role", "admin")
    assert created.returncode == 0, created.stderr
    token_b = run_cli(config_b, "token", "create", "--user", "admin@b.example")
    assert token_b.returncode == 0, token_b.stderr
    token_b = token_b.stdout.strip()
    h.reset_login_limit()
    release_db()

    server_a = RunningServer(app_config, tmp_path / "server-a.log")
    server_b = RunningServer(config_b, tmp_path / "server-b.log")
    socket_a = socket_b = None
    try:
        socket_a = AgentSocket(server_a.url, login_session(server_a.url, "admin@example.com",
                                                          "correct horse battery"))
        socket_b = AgentSocket(server_b.url, login_session(server_b.url, "admin@b.example",
                                                          h.PASSWORD))
        # A's message, applied by A's worker (this process), reaches A's admin through Redis
        h.inbound(support, 8101, "Секрет установки A")
        socket_a.wait_for("message.created", lambda d: d["data"]["text"] == "Секрет установки A")
        # then B does something; once B's admin hears it, A's earlier event would have come
        # first on a shared channel
        import requests

        response = requests.post(f"{server_b.url}/api/v1/deals", timeout=30, json={
            "external_ref": "b-1", "title": "Umowa B", "customer": {"email": "klient@b.example"}},
            headers={"Authorization": f"Bearer {token_b}"})
        assert response.status_code == 201, response.text
        socket_b.wait_for("deal.updated", lambda d: d["data"]["title"] == "Umowa B")
        assert "Секрет установки A" not in _message_texts(socket_b)
        assert not [e for e, d in socket_b.events
                    if e.startswith(("message.", "conversation."))], socket_b.events
        assert not [e for e, d in socket_a.events if e == "deal.updated"]
    finally:
        for socket in (socket_a, socket_b):
            if socket is not None:
                socket.close()
        server_a.stop()
        server_b.stop()


def test_a_rolled_back_action_pushes_nothing(backend, app, ctx, admin, telegram_api,
                                            monkeypatch):
    """Events go out after commit only: a note added and rolled back is never pushed; the
    note committed after it is (and proves the first one had its chance to go out)."""
    from app.infra.extensions import socketio
    from app.infra.models import Agent, Conversation
    from app.infra.state import db
    from app.usecases.outbox import add_note

    support, _sales = h.channels(telegram_api)
    conversation_id = h.conversation_of(h.inbound(support, 9301, "Нужна помощь")).id
    pushed: list[tuple[str, dict]] = []
    monkeypatch.setattr(socketio, "emit",
                        lambda event, data=None, **kw: pushed.append((event, data)))

    agent = db.session.get(Agent, admin.id)
    conversation = db.session.get(Conversation, conversation_id)
    add_note(db.session, conversation, agent, "Отменённая заметка")
    db.session.flush()
    db.session.rollback()
    conversation = db.session.get(Conversation, conversation_id)
    add_note(db.session, conversation, agent, "Сохранённая заметка")
    db.session.commit()
    texts = [data["data"].get("text") for event, data in pushed if event == "message.created"]
    assert texts == ["Сохранённая заметка"]


def test_an_event_a_client_receives_is_already_readable_through_the_api(
        backend, ctx, admin, admin_token, telegram_api, start_server):
    """The moment a browser hears `message.created`, the API already returns that message:
    the event left after the commit, not before."""
    import threading

    import requests
    import socketio as socketio_client

    support, _sales = h.channels(telegram_api)
    h.reset_login_limit()
    release_db()
    server = start_server()
    seen: list[tuple[int, bool]] = []
    done = threading.Event()
    client = socketio_client.Client(reconnection=False)

    def on_message(data):
        message = data["data"]
        listed = requests.get(
            f"{server.url}/api/v1/conversations/{message['conversation_id']}/messages",
            headers={"Authorization": f"Bearer {admin_token}"}, timeout=10)
        ids = [m["id"] for m in listed.json().get("items", [])] if listed.ok else []
        seen.append((listed.status_code, message["id"] in ids))
        done.set()

    client.on("message.created", on_message, namespace="/agents")
    session = login_session(server.url, "admin@example.com", "correct horse battery")
    cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    client.connect(server.url, namespaces=["/agents"], headers={"Cookie": cookie},
                   transports=["websocket"], wait_timeout=10)
    try:
        if backend == "sqlite":
            h.telegram_post(server, support, "support-secret", 9401, 9401, "Читается сразу?")
        else:  # applied by this process, as by a worker: the event travels through Redis
            h.inbound(support, 9401, "Читается сразу?")
        assert done.wait(15), "no message.created"
        assert seen == [(200, True)]
    finally:
        client.disconnect()


def test_an_event_goes_out_only_once_another_connection_can_read_it(backend, ctx, telegram_api,
                                                                     monkeypatch):
    """Deterministic twin of the test above: at the very moment `message.created` is emitted,
    a connection of its own (what serves the browser's next API call) already finds it."""
    from contextlib import closing

    from sqlalchemy import text

    from app.infra.extensions import socketio
    from app.infra.state import db

    support, _sales = h.channels(telegram_api)
    url = db.engine.url

    def committed(message_id: int) -> bool:
        if url.get_backend_name() == "sqlite":  # a plain reader: WAL, no write lock wanted
            import sqlite3

            with closing(sqlite3.connect(url.database)) as connection:
                return connection.execute("SELECT 1 FROM messages WHERE id = ?",
                                          (message_id,)).fetchone() is not None
        with db.engine.connect() as connection:
            return connection.execute(text("SELECT 1 FROM messages WHERE id = :id"),
                                      {"id": message_id}).first() is not None

    readable: list[bool] = []

    def emit(event, data=None, **_kw):
        if event == "message.created":
            readable.append(committed(data["data"]["id"]))

    monkeypatch.setattr(socketio, "emit", emit)
    h.inbound(support, 9501, "Уже в базе?")
    assert readable == [True]
