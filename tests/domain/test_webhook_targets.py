"""Outgoing webhooks are not a way into this host's network (issue 14, Low): URLs on
loopback, link-local, private and reserved addresses are refused with 422, and a delivery
to one (stored earlier, or a name that resolves there) fails without a request, unless
`security.allow_private_webhook_urls` is on."""
from __future__ import annotations

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import threading

import pytest
from sqlalchemy import select

from app.infra.models import WebhookDelivery, WebhookEndpoint
from app.infra.state import db
from tests.conftest import run_jobs, wait_until

PRIVATE = ["http://127.0.0.1:9/hook", "http://localhost:8080/x", "http://LOCALHOST./x",
           "http://10.1.2.3/", "http://172.20.0.5/", "http://192.168.1.5/crm",
           "http://169.254.169.254/latest/meta-data/", "http://[::1]/", "http://[fe80::1]/",
           "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/", "http://100.64.0.1/",
           "http://[fd00::5]/"]


@pytest.mark.parametrize("url", PRIVATE)
def test_private_urls_are_refused(ctx, api, url):
    created = api.post("/webhooks", json={"url": url})
    assert created.status_code == 422, (url, created.json)
    assert list(created.json["detail"]["json"]) == ["url"]


def test_public_urls_are_accepted_and_patch_is_checked(ctx, api):
    created = api.post("/webhooks", json={"url": "https://93.184.215.14/hooks/threadline"})
    assert created.status_code == 201, created.json
    moved = api.patch(f"/webhooks/{created.json['id']}", json={"url": "http://10.0.0.7/hook"})
    assert moved.status_code == 422 and "url" in moved.json["detail"]["json"]
    assert api.get("/webhooks").json["items"][0]["url"] == "https://93.184.215.14/hooks/threadline"


@pytest.fixture
def local_server():
    hits = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", hits
    server.shutdown()
    server.server_close()


def test_a_stored_private_url_is_not_called(app, ctx, api, local_server):
    url, hits = local_server
    db.session.add(WebhookEndpoint(url=url, events=[], description="", active=True,
                                   secret="s" * 32))
    db.session.commit()
    assert api.post("/orders", json={"external_ref": "P-1", "total": "1",
                                     "customer": {"email": "p@example.com"}}).status_code == 201
    run_jobs(app)

    def attempted():
        db.session.expire_all()
        return [d for d in db.session.scalars(select(WebhookDelivery)) if d.attempts >= 1
                and d.status in ("pending", "failed")]

    for delivery in wait_until(attempted, timeout=20):
        assert delivery.error.startswith("refused: 127.0.0.1 is a private address")
        assert delivery.response_status is None
    assert hits == []
