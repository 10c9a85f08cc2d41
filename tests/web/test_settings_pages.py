"""The settings pages (issue 16) through the real login form: admins only (an agent gets an
HTML 403 page), CSRF on every form, errors next to the field with what was typed kept and
nothing written, secrets once on creation and then only on a deliberate (audited) reveal,
the email form's "test connection" logging in to a real Dovecot and SMTP server."""
from __future__ import annotations

import re

from sqlalchemy import func, select

from app.infra.models import AuditLog, Channel
from app.infra.state import db
from tests import inbox_helpers as h
from tests.servers.dovecot import Dovecot
from tests.servers.smtp import RecordingSMTP
from tests.web.api.test_inbox_api import _login
from tests.conftest import run_jobs, wait_until


def _csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _admin_client(app):
    with app.app_context():
        h.agent("boss@example.com", "Босс", ["Support"], role="admin")
    client = app.test_client()
    assert _login(client, "boss@example.com", h.PASSWORD).status_code == 302
    return client


def _count(app, model) -> int:
    with app.app_context():
        n = db.session.scalar(select(func.count(model.id)))
        db.session.commit()
        return n


def test_agents_get_an_html_403_and_admins_a_linked_overview(app):
    with app.app_context():
        h.agent("agent@example.com", "Agent", ["Support"])
    client = app.test_client()
    assert client.get("/settings").status_code == 302  # signed out: to the login page
    assert _login(client, "agent@example.com", h.PASSWORD).status_code == 302
    for path in ("/settings", "/settings/channels", "/settings/channels/new/telegram",
                 "/settings/agents", "/settings/teams", "/settings/tokens", "/settings/audit"):
        page = client.get(path)
        assert page.status_code == 403, path
        assert page.mimetype == "text/html" and "Admins only" in page.get_data(as_text=True)
    assert 'href="/settings"' not in client.get("/").get_data(as_text=True)

    admin = _admin_client(app)
    assert 'href="/settings"' in admin.get("/").get_data(as_text=True)  # in the inbox header
    overview = admin.get("/settings").get_data(as_text=True)
    for path in ("/settings/channels", "/settings/agents", "/settings/teams",
                 "/settings/tokens", "/settings/audit"):
        assert f'href="{path}"' in overview
    assert "Настройки" in admin.get("/settings", headers={"Accept-Language": "ru"}).get_data(as_text=True)


def test_channel_form_errors_csrf_secret_once_and_reveal(app):
    client = _admin_client(app)
    page = client.get("/settings/channels/new/webchat").get_data(as_text=True)
    csrf = _csrf(page)
    form = {"name": "Сайт", "allowed_origins": "not an origin", "prechat": "true",
            "business_hours": "mon-fri 09:00-18:00", "timezone": "Europe/Warsaw"}
    assert client.post("/settings/channels/new/webchat", data=form).status_code == 400  # no CSRF
    bad = client.post("/settings/channels/new/webchat", data={**form, "csrf_token": csrf})
    body = bad.get_data(as_text=True)
    assert bad.status_code == 422
    assert re.search(r'allowed_origins.*?field-error[^>]*>[^<]*not an origin', body, re.S)
    assert 'value="Сайт"' in body and 'value="Europe/Warsaw"' in body  # kept as typed
    assert _count(app, Channel) == 0

    good = client.post("/settings/channels/new/webchat",
                       data={**form, "allowed_origins": "https://shop.example.com",
                             "csrf_token": csrf})
    body = good.get_data(as_text=True)
    assert good.status_code == 201
    with app.app_context():
        channel = db.session.scalar(select(Channel))
        secret, public_id, channel_id = channel.settings["secret"], channel.public_id, channel.id
        db.session.commit()
    assert secret in body  # shown once, on creation
    assert f'data-channel="{public_id}"' in body and "/widget.js" in body  # the embed snippet
    edit = client.get(f"/settings/channels/{channel_id}").get_data(as_text=True)
    assert secret not in edit and f'data-channel="{public_id}"' in edit
    assert secret not in client.get("/settings/channels").get_data(as_text=True)
    revealed = client.post(f"/settings/channels/{channel_id}/reveal", data={"csrf_token": csrf})
    assert secret in revealed.get_data(as_text=True)
    with app.app_context():
        entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "channel.reveal"))
        assert entry.details == {"keys": ["secret"]} and entry.actor_id is not None
        db.session.commit()
    rotated = client.post(f"/settings/channels/{channel_id}/rotate", data={"csrf_token": csrf})
    assert rotated.status_code == 200 and secret not in rotated.get_data(as_text=True)

    # edit keeps typed values on error, a secret left empty keeps its value
    edit_bad = client.post(f"/settings/channels/{channel_id}",
                           data={"csrf_token": csrf, "name": "", "allowed_origins": "https://a.example"})
    assert edit_bad.status_code == 422 and 'value="https://a.example"' in edit_bad.get_data(as_text=True)
    assert client.post(f"/settings/channels/{channel_id}/delete",
                       data={"csrf_token": csrf}).status_code == 302
    assert _count(app, Channel) == 0  # no history: deleted
    listed = client.get("/settings/audit").get_data(as_text=True)
    assert "channel.create" in listed and "channel.delete" in listed and secret not in listed


def test_email_form_tests_the_connection_for_real(app):
    client = _admin_client(app)
    csrf = _csrf(client.get("/settings/channels/new/email").get_data(as_text=True))
    with Dovecot() as imap, RecordingSMTP() as smtp:
        form = {"csrf_token": csrf, "name": "Support mail", "action": "test",
                **{k: str(v) for k, v in imap.settings().items()},
                "smtp_host": smtp.host, "smtp_port": str(smtp.port), "smtp_security": "none",
                "from_address": "support@example.test"}
        ok = client.post("/settings/channels/new/email", data=form)
        assert ok.status_code == 200, ok.get_data(as_text=True)[-2000:]
        assert "IMAP ok" in ok.get_data(as_text=True)
        wrong = client.post("/settings/channels/new/email", data={**form, "imap_password": "wrong"})
        body = wrong.get_data(as_text=True)
        assert wrong.status_code == 422 and "Connection failed" in body
        assert 'value="Support mail"' in body and "wrong" not in re.findall(r'name="imap_password"[^>]*', body)[0]
        assert _count(app, Channel) == 0  # a test writes nothing
        saved = client.post("/settings/channels/new/email", data={**form, "action": "save"})
        assert saved.status_code == 201
    assert _count(app, Channel) == 1


def test_agents_teams_tokens_pages(app):
    client = _admin_client(app)
    page = client.get("/settings/agents").get_data(as_text=True)
    csrf = _csrf(page)
    bad = client.post("/settings/agents", data={"csrf_token": csrf, "email": "nope",
                                                "name": "Łucja"})
    assert bad.status_code == 422 and 'value="Łucja"' in bad.get_data(as_text=True)
    assert "Not an email address." in bad.get_data(as_text=True)
    russian = client.post("/settings/agents", headers={"Accept-Language": "ru"},
                          data={"csrf_token": csrf, "email": "nope"})
    assert "Это не адрес электронной почты." in russian.get_data(as_text=True)  # said in Russian
    invited = client.post("/settings/agents", data={"csrf_token": csrf, "email": "lucja@example.com",
                                                    "name": "Łucja", "role": "agent"})
    assert invited.status_code == 201 and "/invite/" in invited.get_data(as_text=True)

    teams = client.post("/settings/teams", data={"csrf_token": csrf, "name": "Support"})
    assert teams.status_code == 422 and "exists already" in teams.get_data(as_text=True)
    assert client.post("/settings/teams", data={"csrf_token": csrf, "name": "Sprzedaż"}).status_code == 302
    assert "Sprzedaż" in client.get("/settings/teams").get_data(as_text=True)

    tokens = client.post("/settings/tokens", data={"csrf_token": csrf, "name": "CRM sync",
                                                   "agent_id": "1"})
    value = re.search(r'id="token-value">([^<]+)<', tokens.get_data(as_text=True)).group(1)
    assert tokens.status_code == 201 and value.startswith("tl_")
    listed = client.get("/settings/tokens").get_data(as_text=True)
    assert "CRM sync" in listed and value not in listed and "never" in listed
    token_id = re.search(r'/settings/tokens/(\d+)/revoke', listed).group(1)
    assert client.post(f"/settings/tokens/{token_id}/revoke", data={"csrf_token": csrf}).status_code == 302
    assert app.test_client().get("/api/v1/conversations",
                                 headers={"Authorization": f"Bearer {value}"}).status_code == 401


def test_webhooks_page_secret_once_delivery_log_and_replay(app, telegram_api):
    from app.infra.models import WebhookDelivery, WebhookEndpoint

    client = _admin_client(app)
    csrf = _csrf(client.get("/settings/webhooks").get_data(as_text=True))
    bad = client.post("/settings/webhooks", data={"csrf_token": csrf, "url": "ftp://nope",
                                                  "description": "Мой CRM"})
    body = bad.get_data(as_text=True)
    assert bad.status_code == 422 and "An http(s) URL" in body and 'value="Мой CRM"' in body
    assert _count(app, WebhookEndpoint) == 0
    added = client.post("/settings/webhooks", data={
        "csrf_token": csrf, "url": "http://127.0.0.1:9/hook", "description": "Мой CRM",
        "events": ["message.created"]})
    assert added.status_code == 201
    with app.app_context():
        secret = db.session.scalar(select(WebhookEndpoint.secret))
        support, _sales = h.channels(telegram_api)
        h.inbound(support, 5150, "Привет, вебхук")
        delivery_id = db.session.scalar(select(WebhookDelivery.id))
        db.session.commit()
    assert secret in added.get_data(as_text=True)
    def status():
        with app.app_context():
            delivery = db.session.get(WebhookDelivery, delivery_id)
            value = (delivery.status, delivery.attempts)
            db.session.commit()
            return value
    # nothing listens on port 9: the first attempt fails; the retry waits for the sweeper
    # (not running in this test)
    run_jobs(app)  # with Redis: an rq worker makes the attempt
    wait_until(lambda: status()[0] in ("pending", "failed") and status()[1] >= 1, timeout=30,
               message="a failed attempt")
    page = client.get("/settings/webhooks").get_data(as_text=True)
    assert secret not in page and "message.created" in page and f'data-delivery="{delivery_id}"' in page
    replayed = client.post(f"/settings/webhook-deliveries/{delivery_id}/replay",
                           data={"csrf_token": csrf})
    assert replayed.status_code == 302
    with app.app_context():
        entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "webhook.replay"))
        assert entry is not None and entry.target_id == delivery_id
        db.session.commit()


def test_pipeline_stages_and_custom_fields_page(app):
    from app.infra.models import CustomFieldDef, PipelineStage

    client = _admin_client(app)
    page = client.get("/settings/crm")
    assert page.status_code == 200
    csrf = _csrf(page.get_data(as_text=True))
    stages_before = _count(app, PipelineStage)
    bad = client.post("/settings/crm/stages", data={"csrf_token": csrf, "key": "Bad Key",
                                                    "name": "Переговоры", "position": "3"})
    body = bad.get_data(as_text=True)
    assert bad.status_code == 422 and "Lowercase letters" in body and 'value="Переговоры"' in body
    assert _count(app, PipelineStage) == stages_before
    good = client.post("/settings/crm/stages", data={"csrf_token": csrf, "key": "negotiation",
                                                     "name": "Переговоры", "position": "3",
                                                     "outcome": "open"})
    assert good.status_code == 302 and _count(app, PipelineStage) == stages_before + 1
    with app.app_context():
        stage_id = db.session.scalar(select(PipelineStage.id).where(PipelineStage.key == "negotiation"))
        db.session.commit()
    renamed = client.post(f"/settings/crm/stages/{stage_id}", data={
        "csrf_token": csrf, "name": "Negocjacje", "position": "4", "outcome": "open"})
    assert renamed.status_code == 302 and "Negocjacje" in client.get("/settings/crm").get_data(as_text=True)

    no_choices = client.post("/settings/crm/fields", data={"csrf_token": csrf, "key": "size",
                                                           "label": "Размер", "type": "choice"})
    assert no_choices.status_code == 422 and "needs choices" in no_choices.get_data(as_text=True)
    assert _count(app, CustomFieldDef) == 0
    added = client.post("/settings/crm/fields", data={"csrf_token": csrf, "key": "size",
                                                      "label": "Размер", "type": "choice",
                                                      "choices": "S\nM\nL"})
    assert added.status_code == 302
    with app.app_context():
        assert db.session.scalar(select(CustomFieldDef.choices)) == ["S", "M", "L"]
        assert db.session.scalar(select(AuditLog.id).where(AuditLog.action == "field.create"))
        db.session.commit()
