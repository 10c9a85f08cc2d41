"""Outgoing webhooks: signed over "<timestamp>.<body>", retried after a 500, logged,
replayable."""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from app.infra.models import WebhookDelivery
from app.infra.state import db
from tests.conftest import run_jobs, wait_until


class Receiver:
    """A CRM on 127.0.0.1 that checks our signature and fails the first `fail` requests."""

    def __init__(self, fail: int = 0):
        self.fail = fail
        self.secret = ""
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                timestamp = self.headers["X-Threadline-Timestamp"]
                expected = "sha256=" + hmac.new(outer.secret.encode(),
                                                timestamp.encode() + b"." + body,
                                                hashlib.sha256).hexdigest()
                valid = hmac.compare_digest(expected, self.headers["X-Threadline-Signature"])
                fresh = abs(time.time() - int(timestamp)) < 300
                outer.requests.append({"valid": valid and fresh, "body": json.loads(body),
                                       "event": self.headers["X-Threadline-Event"]})
                status = 500 if len(outer.requests) <= outer.fail else 200
                self.send_response(status if valid else 401)
                self.end_headers()
                self.wfile.write(b"boom" if status == 500 else b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def app_config(app_config):
    """The receiver listens on 127.0.0.1: loopback targets allowed for these tests."""
    app_config["security"]["allow_private_webhook_urls"] = True
    return app_config


@pytest.fixture
def receiver():
    r = Receiver(fail=1)
    yield r
    r.close()


def _deliveries():
    db.session.expire_all()
    return db.session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)).all()


def test_signed_retried_logged_replayed(app, ctx, api, receiver):
    created = api.post("/webhooks", json={"url": receiver.url, "events": ["customer.updated",
                                                                          "deal.updated"]})
    assert created.status_code == 201, created.json
    receiver.secret = created.json["secret"]
    assert "secret" not in api.get("/webhooks").json["items"][0]
    bad = api.post("/webhooks", json={"url": "ftp://x", "events": ["nope"]})
    assert bad.status_code == 422 and set(bad.json["detail"]["json"]) == {"url", "events"}

    order = api.post("/orders", json={"external_ref": "W-1", "total": "10",
                                      "customer": {"email": "hook@example.com"}})
    assert order.status_code == 201
    # the delivery row was committed with the event (customer.created is not subscribed)
    (delivery,) = _deliveries()
    assert delivery.event_type == "customer.updated"
    run_jobs(app)
    # first attempt: the receiver answers 500 -> pending with a due time, logged
    delivery = wait_until(lambda: next((d for d in _deliveries() if d.attempts == 1
                                        and d.status == "pending"), None), timeout=20)
    assert delivery.response_status == 500 and "HTTP 500" in delivery.error
    assert delivery.next_attempt_at is not None
    from app.usecases.hooks import sweep_webhooks

    # the sweep queues the retry once its backoff (0.2 s base in tests) is over
    wait_until(lambda: sweep_webhooks()["queued"] == 1, timeout=10, message="the retry due")
    run_jobs(app)
    delivery = wait_until(lambda: next((d for d in _deliveries() if d.status == "delivered"), None),
                          timeout=20)
    assert delivery.attempts == 2 and delivery.response_status == 200
    assert [entry["status_code"] for entry in delivery.log] == [500, 200]
    assert len(receiver.requests) == 2 and all(r["valid"] for r in receiver.requests)
    sent = receiver.requests[-1]["body"]
    assert sent["type"] == "customer.updated" and sent["id"] == delivery.event_id
    assert sent["data"]["orders"][0]["external_ref"] == "W-1"

    log = api.get("/webhook-deliveries", query_string={"status": "delivered"}).json["items"]
    assert [d["id"] for d in log] == [delivery.id] and len(log[0]["log"]) == 2
    replayed = api.post(f"/webhook-deliveries/{delivery.id}/replay")
    assert replayed.status_code == 202 and replayed.json["status"] == "pending"
    run_jobs(app)
    wait_until(lambda: len(receiver.requests) == 3, timeout=20)
    final = wait_until(lambda: next((d for d in _deliveries() if d.status == "delivered"), None))
    assert final.attempts == 1 and [e["status_code"] for e in final.log] == [500, 200, 200]
    assert receiver.requests[2]["body"] == receiver.requests[1]["body"]


def test_nothing_is_delivered_for_a_rolled_back_event(ctx, api, receiver):
    from app.domain.customers import upsert_order

    created = api.post("/webhooks", json={"url": receiver.url})
    assert created.status_code == 201
    upsert_order(db.session, {"external_ref": "R-1", "customer": {"email": "r@example.com"}})
    db.session.rollback()
    with db.session.begin_nested():
        pass
    try:
        with db.session.begin_nested():
            upsert_order(db.session, {"external_ref": "R-2",
                                      "customer": {"email": "s@example.com"}})
            raise RuntimeError("undo the savepoint")
    except RuntimeError:
        pass
    db.session.commit()
    assert _deliveries() == []
    upsert_order(db.session, {"external_ref": "R-3", "customer": {"email": "t@example.com"}})
    db.session.commit()
    assert {d.event_type for d in _deliveries()} == {"customer.created", "customer.updated"}
