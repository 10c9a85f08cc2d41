"""The settings area in the API (issue 16): /api/v1/channels, /agents, /teams. Admins only
(403 for agents), 422 naming the field on bad input with nothing written, every change in the
audit log, secrets never in lists or the audit log."""
from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import func, select

from app.infra.models import Agent, ApiToken, AuditLog, Channel, Conversation, Team
from app.infra.state import db
from tests import inbox_helpers as h

TOKEN = "123456:TEST-token"


def _audit(app, action: str) -> list[AuditLog]:
    with app.app_context():
        rows = list(db.session.scalars(select(AuditLog).where(AuditLog.action == action)))
        db.session.commit()
        return rows


def _can_sign_in(app, email: str, password: str) -> bool:
    """What the login form checks (the form itself is driven in the browser test; a test
    client under a held app context would reuse Flask-Login's cached user)."""
    from app.domain.agents import check_password, find_agent

    with app.app_context():
        agent = find_agent(email)
        db.session.refresh(agent)
        ok = agent is not None and agent.active and check_password(agent, password)
        db.session.commit()
        return ok


def _team_ids(app) -> dict[str, int]:
    with app.app_context():
        found = {t.name: t.id for t in db.session.scalars(select(Team))}
        db.session.commit()
        return found


@pytest.fixture
def agent_api(app, ctx):
    """A client with a plain agent's token."""
    agent = h.agent("agent@example.com", "Plain Agent", ["Support"])
    token = h.token(agent)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}

    class Api:
        def call(self, method, path, json=None):
            return client.open(f"/api/v1{path}", method=method, json=json, headers=headers)
    return Api()


def test_agents_get_403_everywhere(app, api, agent_api):
    for method, path, body in [
            ("GET", "/channels", None), ("POST", "/channels", {"kind": "crm", "name": "x"}),
            ("GET", "/channels/1", None), ("PATCH", "/channels/1", {"name": "y"}),
            ("DELETE", "/channels/1", None), ("POST", "/channels/1/reveal", None),
            ("POST", "/channels/1/rotate", None),
            ("GET", "/agents", None), ("POST", "/agents", {"email": "n@example.com"}),
            ("GET", "/agents/1", None), ("PATCH", "/agents/1", {"role": "admin"}),
            ("POST", "/agents/1/reset-password", None),
            ("GET", "/teams", None), ("POST", "/teams", {"name": "Z"}),
            ("PATCH", "/teams/1", {"name": "Z"})]:
        response = agent_api.call(method, path, body)
        assert response.status_code == 403, (method, path, response.status_code)
    with app.app_context():
        assert db.session.scalar(select(func.count(Channel.id))) == 0
        assert db.session.scalar(select(Team.id).where(Team.name == "Z")) is None
        db.session.commit()


def test_channels_add_list_edit_reveal_rotate_delete(app, api, telegram_api):
    teams = _team_ids(app)
    created = api.post("/channels", json={
        "kind": "telegram", "name": "Магазин бот", "team_ids": [teams["Support"]],
        "settings": {"token": TOKEN, "api_base_url": telegram_api.base_url}})
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    channel_id = body["id"]
    assert body["bot"] == "@threadline_test_bot"          # getMe answered by the fake Bot API
    assert telegram_api.calls("getMe")
    assert body["settings"]["mode"] == "polling"          # polling by default
    assert body["secrets"]["token"] == TOKEN and body["secrets"]["secret_token"]  # shown once
    assert body["team_ids"] == [teams["Support"]]
    secret_token = body["secrets"]["secret_token"]

    listed = api.get("/channels")
    assert listed.status_code == 200
    text = listed.get_data(as_text=True)
    assert TOKEN not in text and secret_token not in text and "secrets" not in text
    item = listed.get_json()["items"][0]
    assert item["settings"]["token"] == "***" and item["messages_in"] == 0
    one = api.get(f"/channels/{channel_id}").get_json()
    assert one["name"] == "Магазин бот" and TOKEN not in json.dumps(one)

    # bad input: 422 naming the field, nothing written
    for payload, field in [
            ({"kind": "fax", "name": "x"}, "kind"),
            ({"kind": "telegram", "name": "x", "settings": {"token": "nonsense"}}, "settings.token"),
            ({"kind": "telegram", "name": "Магазин бот", "settings": {"token": TOKEN}}, "name"),
            ({"kind": "crm", "name": "c", "team_ids": [999]}, "team_ids"),
            ({"kind": "webchat", "name": "w", "settings": {"allowed_origins": "not a url"}},
             "settings.allowed_origins"),
            ({"kind": "crm"}, "name")]:
        bad = api.post("/channels", json=payload)
        assert bad.status_code == 422, (payload, bad.get_json())
        assert field in bad.get_json()["detail"]["json"], (payload, bad.get_json())
    with app.app_context():
        assert db.session.scalar(select(func.count(Channel.id))) == 1
        db.session.commit()

    # a token getMe refuses is refused too
    telegram_api.fail_next("getMe", 401, "Unauthorized")
    refused = api.post("/channels", json={"kind": "telegram", "name": "Other",
                                          "settings": {"token": "999:refused",
                                                       "api_base_url": telegram_api.base_url}})
    assert refused.status_code == 422 and "settings.token" in refused.get_json()["detail"]["json"]

    patched = api.patch(f"/channels/{channel_id}", json={
        "name": "Shop bot", "settings": {"token": "***", "mode": "webhook"}})
    assert patched.status_code == 422  # webhook mode needs a public URL
    assert "settings.public_url" in patched.get_json()["detail"]["json"]
    patched = api.patch(f"/channels/{channel_id}", json={"name": "Shop bot", "team_ids": []})
    assert patched.status_code == 200 and patched.get_json()["name"] == "Shop bot"
    assert patched.get_json()["team_ids"] == []

    revealed = api.post(f"/channels/{channel_id}/reveal")
    assert revealed.get_json()["secrets"]["token"] == TOKEN
    rotated = api.post(f"/channels/{channel_id}/rotate").get_json()["secrets"]["secret_token"]
    assert rotated != secret_token
    assert api.post(f"/channels/{channel_id}/reveal").get_json()["secrets"]["secret_token"] == rotated

    for action in ("channel.create", "channel.update", "channel.reveal", "channel.rotate"):
        assert _audit(app, action), action
    entries = json.dumps([e.details for e in _audit(app, "channel.create")
                          + _audit(app, "channel.reveal") + _audit(app, "channel.rotate")])
    assert TOKEN not in entries and rotated not in entries and secret_token not in entries
    update = _audit(app, "channel.update")[0]
    assert update.details["before"]["name"] == "Магазин бот"
    assert update.details["after"]["name"] == "Shop bot"

    # no history: deleted; with history: disabled, messages kept
    assert api.delete(f"/channels/{channel_id}").get_json() == {"outcome": "deleted"}
    assert api.get(f"/channels/{channel_id}").status_code == 404
    with app.app_context():
        support, _sales = h.channels(telegram_api)
        h.inbound(support, 4242, "Привет")
        support_id = support.id
    assert api.delete(f"/channels/{support_id}").get_json() == {"outcome": "disabled"}
    assert api.get(f"/channels/{support_id}").get_json()["active"] is False
    assert api.get(f"/channels/{support_id}").get_json()["messages_in"] == 1
    assert api.patch(f"/channels/{support_id}", json={"active": True}).get_json()["active"] is True


def test_webchat_and_crm_and_whatsapp_generate_their_secrets(app, api):
    chat = api.post("/channels", json={"kind": "webchat", "name": "Site",
                                       "settings": {"allowed_origins": "https://shop.example.com"}})
    assert chat.status_code == 201 and len(chat.get_json()["secrets"]["secret"]) > 20
    crm = api.post("/channels", json={"kind": "crm", "name": "Shop"}).get_json()
    assert crm["webhook_url"].endswith(f"/webhooks/crm/{crm['id']}") and crm["secrets"]["secret"]
    wa = api.post("/channels", json={"kind": "whatsapp", "name": "WA", "settings": {
        "phone_number_id": "123", "access_token": "EAAtoken", "app_secret": "appsecret"}})
    assert wa.status_code == 201, wa.get_json()
    assert wa.get_json()["secrets"]["verify_token"]  # generated when not given
    assert wa.get_json()["webhook_url"].endswith(f"/webhooks/whatsapp/{wa.get_json()['id']}")


def test_agents_invite_edit_deactivate_and_last_admin(app, api, admin, admin_token):
    teams = _team_ids(app)
    invited = api.post("/agents", json={"email": "Olga@Example.com", "name": "Ольга",
                                        "team_ids": [teams["Sales"]]})
    assert invited.status_code == 201, invited.get_json()
    body = invited.get_json()
    assert body["email"] == "olga@example.com" and body["role"] == "agent"
    assert body["team_ids"] == [teams["Sales"]]
    url = body["invite_url"]
    assert re.search(r"/invite/[\w.-]+$", url)
    assert _audit(app, "agent.invite")[0].details["after"]["email"] == "olga@example.com"

    for payload, field in [({"email": "not-an-email"}, "email"),
                           ({"email": "olga@example.com"}, "email"),
                           ({"email": "x@example.com", "role": "boss"}, "role"),
                           ({"email": "y@example.com", "team_ids": [999]}, "team_ids")]:
        bad = api.post("/agents", json=payload)
        assert bad.status_code == 422 and field in bad.get_json()["detail"]["json"], payload
    with app.app_context():
        assert db.session.scalar(select(func.count(Agent.id))) == 2
        db.session.commit()

    # the invite link sets a password once; then the agent signs in
    client = app.test_client()
    path = url.split("localhost", 1)[-1]
    page = client.get(path)
    assert page.status_code == 200 and "olga@example.com" in page.get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    short = client.post(path, data={"csrf_token": csrf, "password": "short", "confirm": "short"})
    assert short.status_code == 422
    done = client.post(path, data={"csrf_token": csrf, "password": "пароль-ольги-1",
                                   "confirm": "пароль-ольги-1"})
    assert done.status_code == 302
    assert client.get(path).status_code == 410  # one-time
    assert _can_sign_in(app, "olga@example.com", "пароль-ольги-1")

    agent_id = body["id"]
    changed = api.patch(f"/agents/{agent_id}", json={"role": "admin", "team_ids": []})
    assert changed.status_code == 200 and changed.get_json()["role"] == "admin"
    api.patch(f"/agents/{agent_id}", json={"role": "agent", "team_ids": [teams["Support"]]})

    # deactivation: tokens revoked, open conversations back to the queue
    with app.app_context():
        olga = db.session.get(Agent, agent_id)
        olga_token = h.token(olga)
    olga_client = app.test_client()
    auth = {"Authorization": f"Bearer {olga_token}"}
    assert olga_client.get("/api/v1/conversations", headers=auth).status_code == 200
    with app.app_context():
        from tests.fakes.telegram_api import FakeTelegramAPI
        with FakeTelegramAPI() as fake:
            support, _sales = h.channels(fake)
            message = h.inbound(support, 777, "Здравствуйте")
        conversation = h.conversation_of(message)
        conversation.assignee_id = agent_id
        db.session.commit()
        conversation_id = conversation.id
    off = api.patch(f"/agents/{agent_id}", json={"active": False})
    assert off.status_code == 200 and off.get_json()["active"] is False
    assert olga_client.get("/api/v1/conversations", headers=auth).status_code == 401
    with app.app_context():
        assert db.session.scalar(select(func.count(ApiToken.id))
                                 .where(ApiToken.agent_id == agent_id)) == 0
        assert db.session.get(Conversation, conversation_id).assignee_id is None
        db.session.commit()
    assert not _can_sign_in(app, "olga@example.com", "пароль-ольги-1")
    assert _audit(app, "agent.deactivate")
    assert api.patch(f"/agents/{agent_id}", json={"active": True}).get_json()["active"] is True

    # the last admin stays
    last = api.patch(f"/agents/{admin.id}", json={"role": "agent"})
    assert last.status_code == 422 and "role" in last.get_json()["detail"]["json"]
    last = api.patch(f"/agents/{admin.id}", json={"active": False})
    assert last.status_code == 422 and "active" in last.get_json()["detail"]["json"]
    assert api.get(f"/agents/{admin.id}").get_json()["role"] == "admin"

    reset = api.post(f"/agents/{agent_id}/reset-password")
    assert reset.status_code == 200 and "/invite/" in reset.get_json()["invite_url"]
    assert not _can_sign_in(app, "olga@example.com", "пароль-ольги-1")


def test_teams_create_rename_members_channels(app, api, telegram_api):
    created = api.post("/teams", json={"name": "Wsparcie łódź"})
    assert created.status_code == 201
    team_id = created.get_json()["id"]
    assert api.post("/teams", json={"name": "wsparcie ŁÓDŹ"}).status_code in (201, 422)
    dup = api.post("/teams", json={"name": "Support"})
    assert dup.status_code == 422 and "name" in dup.get_json()["detail"]["json"]
    assert api.post("/teams", json={"name": ""}).status_code == 422
    with app.app_context():
        anna = h.agent("anna@example.com", "Anna", [])
        support, _sales = h.channels(telegram_api)
        anna_id, support_id = anna.id, support.id
    patched = api.patch(f"/teams/{team_id}", json={"name": "Polska", "member_ids": [anna_id],
                                                   "channel_ids": [support_id]})
    assert patched.status_code == 200, patched.get_json()
    assert patched.get_json() == {"id": team_id, "name": "Polska", "member_ids": [anna_id],
                                  "channel_ids": [support_id], "distribution": "manual",
                                  "capacity": 5, "business_hours": None}
    bad = api.patch(f"/teams/{team_id}", json={"channel_ids": [9999]})
    assert bad.status_code == 422 and "channel_ids" in bad.get_json()["detail"]["json"]
    bad = api.patch(f"/teams/{team_id}", json={"member_ids": [9999], "name": "Renamed"})
    assert bad.status_code == 422 and "member_ids" in bad.get_json()["detail"]["json"]
    listed = {t["name"]: t for t in api.get("/teams").get_json()["items"]}
    assert "Renamed" not in listed and listed["Polska"]["member_ids"] == [anna_id]
    entry = _audit(app, "team.update")[0]
    assert entry.details["before"]["name"] == "Wsparcie łódź"
    assert entry.details["after"]["channel_ids"] == [support_id]


def test_openapi_documents_the_settings_endpoints(app):
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    for path in ("/api/v1/channels", "/api/v1/channels/{channel_id}", "/api/v1/agents",
                 "/api/v1/agents/{agent_id}", "/api/v1/teams", "/api/v1/teams/{team_id}"):
        assert path in spec["paths"], path
    assert "post" in spec["paths"]["/api/v1/agents"]
    assert "delete" in spec["paths"]["/api/v1/channels/{channel_id}"]


def test_cli_user_invite_prints_a_working_link(app, ctx):
    from tests.conftest import run_cli

    result = run_cli(app.config["THREADLINE"], "user", "invite", "--email", "cli@example.com",
                     "--name", "Ирина", "--team", "Support", "--url", "https://inbox.example.com")
    assert result.returncode == 0, result.stderr
    link = result.stdout.strip().splitlines()[-1]
    assert link.startswith("https://inbox.example.com/invite/")
    client = app.test_client()
    page = client.get(link.removeprefix("https://inbox.example.com"))
    assert page.status_code == 200 and "cli@example.com" in page.get_data(as_text=True)
    again = run_cli(app.config["THREADLINE"], "user", "invite", "--email", "cli@example.com")
    assert again.returncode != 0 and "exists already" in again.stderr


def test_team_patch_sets_distribution_capacity_and_business_hours(app, api):
    """DESIGN 3b: PATCH /teams/<id> carries the team's distribution too; bad input names the
    field and writes nothing."""
    team_id = api.post("/teams", json={"name": "Sprzedaż"}).get_json()["id"]
    hours = {"timezone": "Europe/Warsaw", "days": {"mon": [["09:00", "17:00"]]}}
    patched = api.patch(f"/teams/{team_id}", json={"distribution": "round_robin", "capacity": 3,
                                                   "business_hours": hours, "name": "Sprzedaż PL"})
    assert patched.status_code == 200, patched.get_json()
    body = patched.get_json()
    assert (body["distribution"], body["capacity"], body["name"]) == ("round_robin", 3, "Sprzedaż PL")
    assert body["business_hours"]["timezone"] == "Europe/Warsaw"
    bad = api.patch(f"/teams/{team_id}", json={"distribution": "lottery", "name": "Inna"})
    assert bad.status_code == 422 and "distribution" in bad.get_json()["detail"]["json"]
    listed = {t["id"]: t for t in api.get("/teams").get_json()["items"]}[team_id]
    assert (listed["name"], listed["distribution"], listed["capacity"]) == ("Sprzedaż PL", "round_robin", 3)


def test_cli_channel_disable_delete_team_and_user_deactivate(app, ctx, admin, telegram_api):
    from tests.conftest import run_cli

    config = app.config["THREADLINE"]
    support, _sales = h.channels(telegram_api)
    h.inbound(support, 6060, "Сообщение")
    spare = run_cli(config, "channel", "add", "crm", "--name", "Spare", "--json")
    assert spare.returncode == 0, spare.stderr
    deleted = run_cli(config, "channel", "delete", "Spare")
    assert deleted.returncode == 0 and "deleted" in deleted.stdout
    kept = run_cli(config, "channel", "delete", "Support bot")
    assert kept.returncode == 0 and "disabled" in kept.stdout
    with app.app_context():
        names = {c.name: c.active for c in db.session.scalars(select(Channel))}
        db.session.commit()
    assert names == {"Support bot": False, "Sales bot": True}
    assert run_cli(config, "channel", "enable", "Support bot").returncode == 0

    made = run_cli(config, "team", "create", "Отдел продаж")
    assert made.returncode == 0 and "Отдел продаж" in made.stdout
    assert run_cli(config, "team", "create", "Support").returncode != 0
    assert "Отдел продаж" in run_cli(config, "team", "list").stdout

    h.agent("kim@example.com", "Kim", ["Support"])
    off = run_cli(config, "user", "deactivate", "--email", "kim@example.com")
    assert off.returncode == 0 and "deactivated" in off.stdout
    assert not _can_sign_in(app, "kim@example.com", h.PASSWORD)
    last = run_cli(config, "user", "deactivate", "--email", "admin@example.com")
    assert last.returncode != 0 and "last admin" in last.stderr
    assert run_cli(config, "user", "reactivate", "--email", "kim@example.com").returncode == 0
    assert _can_sign_in(app, "kim@example.com", h.PASSWORD)
