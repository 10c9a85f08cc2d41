"""Request size (issue 14, Medium 6): every route family has a body limit ([limits]),
answered 413 with a JSON body before the body is read; Telegram's secret header is checked
before a byte of the body is read, so a wrong secret with a huge body is refused at once."""
from __future__ import annotations

import io
import json

import pytest

from tests.conftest import telegram_update

HUGE = 300 * 1024 * 1024


class Untouchable(io.RawIOBase):
    """A request body that must not be read."""

    def __init__(self, size: int):
        self.reads, self.size, self.position = 0, size, 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=0):  # the test client measures the stream's length
        self.position = self.size + offset if whence == 2 else offset
        return self.position

    def tell(self):
        return self.position

    def readinto(self, buffer):
        self.reads += 1
        raise AssertionError("the body was read")


def post_unread(app, path, headers, content_length=HUGE):
    body = Untouchable(content_length)
    response = app.test_client().post(path, input_stream=body,
                                      headers={"Content-Type": "application/json", **headers})
    return response, body


def test_telegram_wrong_secret_with_a_huge_body_is_refused_unread(app, telegram_channel):
    response, body = post_unread(app, f"/webhooks/telegram/{telegram_channel.id}",
                                 {"X-Telegram-Bot-Api-Secret-Token": "wrong"})
    assert response.status_code in (401, 403)
    assert body.reads == 0
    response, body = post_unread(app, f"/webhooks/telegram/{telegram_channel.id}", {})
    assert response.status_code in (401, 403) and body.reads == 0


def test_an_authentic_webhook_over_the_limit_is_413_unread(app, telegram_channel):
    response, body = post_unread(app, f"/webhooks/telegram/{telegram_channel.id}",
                                 {"X-Telegram-Bot-Api-Secret-Token": "s3cret-token-value"})
    assert response.status_code == 413
    assert response.json["limit"] == app.config["THREADLINE"]["limits"]["webhook_bytes"]
    assert body.reads == 0
    # one within the limit is taken as before
    ok = app.test_client().post(f"/webhooks/telegram/{telegram_channel.id}",
                                json=telegram_update(5, 42, "Привет, zażółć"),
                                headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-token-value"})
    assert ok.status_code == 200, ok.get_data(as_text=True)


def test_a_chunked_webhook_body_is_cut_off_at_the_limit(app, telegram_channel):
    """No Content-Length (chunked): reading stops at the limit with 413, not at the end."""
    app.config["THREADLINE"]["limits"]["webhook_bytes"] = 1000
    from werkzeug.test import EnvironBuilder

    payload = json.dumps(telegram_update(6, 42, "я" * 5000)).encode()
    environ = EnvironBuilder(
        path=f"/webhooks/telegram/{telegram_channel.id}", method="POST",
        input_stream=io.BytesIO(payload),
        headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-token-value",
                 "Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    ).get_environ()
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input_terminated"] = True  # what gunicorn sets for a chunked body
    from werkzeug.test import run_wsgi_app

    body, status, _headers = run_wsgi_app(app, environ, buffered=True)
    assert status.startswith("413")
    assert json.loads(b"".join(body))["error"] == "request_too_large"


def test_whatsapp_and_crm_bodies_over_the_limit_are_413_before_the_signature(app, ctx):
    from app.domain.channels import add_channel
    from app.infra.state import db

    whatsapp = add_channel("whatsapp", "WA", {"phone_number_id": "1", "access_token": "t",
                                              "app_secret": "s", "verify_token": "v"})
    db.session.commit()
    response, body = post_unread(app, f"/webhooks/whatsapp/{whatsapp.id}",
                                 {"X-Hub-Signature-256": "sha256=00"})
    assert response.status_code == 413 and body.reads == 0
    assert response.json["error"] == "request_too_large"


def test_api_calls_over_the_limit_are_413_with_json(app, admin_token):
    limit = app.config["THREADLINE"]["limits"]["api_bytes"]
    response, body = post_unread(app, "/api/v1/deals",
                                 {"Authorization": f"Bearer {admin_token}"}, limit + 1)
    assert response.status_code == 413 and body.reads == 0
    assert response.is_json and response.json["limit"] == limit
    # an upload may be as large as an attachment
    storage = app.config["THREADLINE"]["storage"]["max_attachment_bytes"]
    response, body = post_unread(app, "/api/v1/uploads",
                                 {"Authorization": f"Bearer {admin_token}"}, storage * 2)
    assert response.status_code == 413 and body.reads == 0
    assert response.json["limit"] > storage


def test_widget_calls_have_their_own_limit(app):
    response, body = post_unread(app, "/widget/upload", {}, HUGE)
    assert response.status_code == 413 and body.reads == 0


def test_pages_refuse_bodies_over_max_request_bytes(app):
    limit = app.config["THREADLINE"]["limits"]["max_request_bytes"]
    response, body = post_unread(app, "/login", {}, limit + 1)
    assert response.status_code == 413 and body.reads == 0


@pytest.mark.parametrize("backend", ["sqlite"])
def test_limits_are_configurable(backend, tmp_path):
    from app.infra.config import load_config

    config = load_config(path=tmp_path / "absent.toml",
                         environ={"THREADLINE_LIMITS_WEBHOOK_BYTES": "12345"})
    assert config["limits"]["webhook_bytes"] == 12345

    from app.web import request_limit

    assert request_limit(config, "/webhooks/telegram/1") == 12345
    assert request_limit(config, "/api/v1/uploads") > config["storage"]["max_attachment_bytes"]
