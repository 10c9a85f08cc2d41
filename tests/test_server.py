"""End to end through a real `threadline serve`: webhook in, live event out, reply sent."""
from __future__ import annotations

import json
import subprocess

import pytest
import requests
from sqlalchemy import func, select

from app.infra.models import InboundEvent, Message
from app.infra.state import db
from tests.conftest import (
    ROOT,
    SCALE_OUT,
    AgentSocket,
    cli_env,
    login_session,
    telegram_update,
    threadline_cmd,
    wait_until,
)

SECRET = {"X-Telegram-Bot-Api-Secret-Token": "s3cret-token-value"}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_embedded_default_end_to_end(backend, ctx, admin, admin_token, telegram_channel,
                                     telegram_api, start_server):
    """No Redis, no worker process: serve takes the webhook, processes it on its own worker
    thread, pushes it live, and sends the agent's reply."""
    server = start_server()
    agent = login_session(server.url, "admin@example.com", "correct horse battery")
    socket = AgentSocket(server.url, agent)
    try:
        url = f"{server.url}/webhooks/telegram/{telegram_channel.id}"
        update = telegram_update(501, 777, "Добрый день! Есть ли размер M?", first_name="Ольга")
        denied = requests.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"})
        assert denied.status_code == 403
        accepted = requests.post(url, json=update, headers=SECRET)
        assert accepted.status_code == 200 and accepted.json()["duplicate"] is False
        again = requests.post(url, json=update, headers=SECRET)
        assert again.status_code == 200 and again.json()["duplicate"] is True

        created = socket.wait_for("message.created", lambda d: d["data"]["direction"] == "in")
        assert created["data"]["text"] == "Добрый день! Есть ли размер M?"
        conversation_id = created["data"]["conversation_id"]
        listed = agent.get(f"{server.url}/api/v1/conversations").json()
        assert "items" in listed, listed
        listed = listed["items"]
        assert [c["id"] for c in listed] == [conversation_id]
        assert listed[0]["customer"]["name"] == "Ольга"

        # the inbox's own session may call the API, but only with its CSRF token
        no_csrf = requests.post(f"{server.url}/api/v1/conversations/{conversation_id}/messages",
                                json={"text": "x"}, cookies=agent.cookies)
        assert no_csrf.status_code in (400, 401)
        reply = agent.post(f"{server.url}/api/v1/conversations/{conversation_id}/messages",
                           json={"text": "Да, есть 🙂"})
        assert reply.status_code == 201, reply.text
        socket.wait_for("message.updated", lambda d: d["data"]["id"] == reply.json()["id"]
                        and d["data"]["status"] == "sent")
        sent = telegram_api.wait_for("sendMessage", 1)
        assert sent[0].params["text"] == "Да, есть 🙂"
        assert db.session.scalar(select(func.count(InboundEvent.id))) == 1
        assert db.session.scalar(select(func.count(Message.id))) == 2
    finally:
        socket.close()
    assert "Traceback" not in server.log()


@pytest.mark.slow
@pytest.mark.parametrize("backend", SCALE_OUT)
def test_worker_event_reaches_a_browser_on_another_web_process(
        backend, app_config, ctx, admin, telegram_channel, telegram_api, start_server):
    """Two web processes and an rq worker joined by Redis: the webhook lands on one, the
    worker processes it, and the agent connected to the other sees it live."""
    web_a, web_b = start_server(), start_server()
    agent = login_session(web_b.url, "admin@example.com", "correct horse battery")
    socket = AgentSocket(web_b.url, agent)
    try:
        update = telegram_update(601, 888, "Dzień dobry, gdzie paczka?", first_name="Zofia")
        response = requests.post(f"{web_a.url}/webhooks/telegram/{telegram_channel.id}",
                                 json=update, headers=SECRET)
        assert response.status_code == 200
        # nothing processes it until a worker runs: web processes only store and enqueue
        assert db.session.scalar(select(func.count(Message.id))) == 0
        worker = subprocess.run(threadline_cmd("worker", "--burst"), cwd=ROOT,
                                env=cli_env(app_config), capture_output=True, text=True, timeout=60)
        assert worker.returncode == 0, worker.stderr
        created = socket.wait_for("message.created")
        assert created["data"]["text"] == "Dzień dobry, gdzie paczka?"
        # a reconnecting client can fetch what it missed from either process
        missed = agent.get(f"{web_a.url}/api/v1/events", params={"after": 0}).json()["items"]
        assert created["id"] in [e["id"] for e in missed]
    finally:
        socket.close()


def test_webhook_rejects_unknown_channel_and_keeps_unreadable_payloads(app, ctx, telegram_channel):
    client = app.test_client()
    assert client.post("/webhooks/telegram/999", json={}, headers=SECRET).status_code == 404
    assert client.post(f"/webhooks/telegram/{telegram_channel.id}", json={"update_id": 1}).status_code == 403
    response = client.post(f"/webhooks/telegram/{telegram_channel.id}", data=b"{not json",
                           headers={**SECRET, "Content-Type": "application/json"})
    assert response.status_code == 200
    event = db.session.scalar(select(InboundEvent))
    assert event.payload == {"_unparsed": "{not json"}
    from tests.conftest import run_jobs

    run_jobs(app)
    db.session.expire_all()
    assert db.session.get(InboundEvent, event.id).status == "failed"


def test_openapi_document_describes_the_api(app):
    spec = app.test_client().get("/api/v1/openapi.json").json
    assert spec["info"]["title"] == "Threadline API"
    paths = spec["paths"]
    for path in ("/api/v1/conversations", "/api/v1/conversations/{conversation_id}/messages",
                 "/api/v1/events"):
        assert path in paths
    assert json.dumps(spec).count("bearer") >= 1


def test_api_requires_a_token(app):
    client = app.test_client()
    assert client.get("/api/v1/conversations").status_code == 401
    bad = client.get("/api/v1/conversations", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401


def test_inbox_page_requires_login(app):
    response = app.test_client().get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_wait_until_reports_timeouts():
    with pytest.raises(AssertionError, match="timed out"):
        wait_until(lambda: False, timeout=0.1, message="never")


def test_api_docs_load_their_assets_locally(app):
    """/api/v1/docs works without internet: every script, stylesheet and icon it names is
    served by the app itself (Swagger UI vendored in static/vendor/swagger-ui)."""
    import re

    client = app.test_client()
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(assets) >= 4, assets
    for url in assets:
        assert url.startswith("/static/vendor/swagger-ui/"), url
        answer = client.get(url)
        assert answer.status_code == 200 and len(answer.data) > 500, url
    assert "SwaggerUIBundle" in client.get(
        "/static/vendor/swagger-ui/swagger-ui-bundle.js").get_data(as_text=True)
