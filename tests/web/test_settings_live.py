"""Admin changes reach connected agents live (issue 16), against a real `threadline serve`
(and on PostgreSQL + Redis, where the sockets are tracked in Redis): a channel added for the
agent's team puts their open socket into its room without a reconnect, a team membership does
the same, and deactivating the agent disconnects the socket and kills their token."""
from __future__ import annotations

import requests

from tests import inbox_helpers as h
from tests.conftest import AgentSocket, login_session, release_db, run_jobs, wait_until


def test_new_channel_and_membership_reach_an_open_socket_and_deactivation_drops_it(
        ctx, admin, admin_token, telegram_api, start_server):
    anna = h.agent("anna@example.com", "Anna Agent", ["Support"])
    anna_token = h.token(anna)
    h.reset_login_limit()
    release_db()
    server = start_server()
    admin_headers = {"Authorization": f"Bearer {admin_token}"}
    teams = {t["name"]: t["id"] for t in requests.get(
        f"{server.url}/api/v1/teams", headers=admin_headers, timeout=10).json()["items"]}

    session = login_session(server.url, "anna@example.com", h.PASSWORD)
    socket = AgentSocket(server.url, session)
    # the admin sees everything: once their socket has an event, so had every room of it
    admin_socket = AgentSocket(server.url, login_session(server.url, "admin@example.com",
                                                         "correct horse battery"))
    try:
        created = requests.post(f"{server.url}/api/v1/channels", headers=admin_headers, json={
            "kind": "telegram", "name": "New bot", "team_ids": [teams["Support"]],
            "settings": {"token": "333333:new-bot-token", "mode": "webhook",
                         "public_url": "https://inbox.example.com",
                         "api_base_url": telegram_api.base_url}}, timeout=30)
        assert created.status_code == 201, created.text
        channel = created.json()
        assert telegram_api.calls("setWebhook")  # webhook mode: set with the channel's URL
        socket.wait_for("access.changed")
        secret = channel["secrets"]["secret_token"]

        class Ref:  # what telegram_post needs of a channel
            id = channel["id"]
        h.telegram_post(server, Ref, secret, 5001, 9001, "Привет из нового бота")
        run_jobs(ctx)  # with Redis: an rq worker processes it
        event = socket.wait_for("message.created",
                                lambda d: d["data"]["text"] == "Привет из нового бота")
        assert event["data"]["channel_id"] == channel["id"]

        # a channel of another team: nothing; then Anna joins that team: it arrives
        other = requests.post(f"{server.url}/api/v1/channels", headers=admin_headers, json={
            "kind": "telegram", "name": "Sales bot", "team_ids": [teams["Sales"]],
            "settings": {"token": "444444:sales-bot-token", "mode": "webhook",
                         "public_url": "https://inbox.example.com",
                         "api_base_url": telegram_api.base_url}}, timeout=30).json()

        class Other:
            id = other["id"]
        h.telegram_post(server, Other, other["secrets"]["secret_token"], 5002, 9002, "Sales one")
        run_jobs(ctx)  # with Redis: an rq worker processes it
        admin_socket.wait_for("message.created", lambda d: d["data"]["text"] == "Sales one")
        patched = requests.patch(f"{server.url}/api/v1/agents/{anna.id}", headers=admin_headers,
                                 json={"team_ids": [teams["Support"], teams["Sales"]]}, timeout=10)
        assert patched.status_code == 200
        wait_until(lambda: len([e for e, _d in socket.events if e == "access.changed"]) >= 2,
                   message="a second access.changed")
        h.telegram_post(server, Other, other["secrets"]["secret_token"], 5003, 9002, "Sales two")
        run_jobs(ctx)  # with Redis: an rq worker processes it
        socket.wait_for("message.created", lambda d: d["data"]["text"] == "Sales two")
        assert not [d for e, d in socket.events
                    if e == "message.created" and d["data"]["text"] == "Sales one"]

        # deactivation: the socket is dropped, the token refused
        auth = {"Authorization": f"Bearer {anna_token}"}
        assert requests.get(f"{server.url}/api/v1/conversations", headers=auth, timeout=10).status_code == 200
        off = requests.patch(f"{server.url}/api/v1/agents/{anna.id}", headers=admin_headers,
                             json={"active": False}, timeout=10)
        assert off.status_code == 200
        wait_until(lambda: not socket.client.connected, message="the socket to be dropped")
        assert requests.get(f"{server.url}/api/v1/conversations", headers=auth, timeout=10).status_code == 401
        assert session.get(f"{server.url}/", timeout=10, allow_redirects=False).status_code == 302
        log = server.log()
        assert "333333:new-bot-token" not in log and secret not in log  # secrets never logged
    finally:
        for client in (socket, admin_socket):
            if client.client.connected:
                client.close()
