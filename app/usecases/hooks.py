"""Reacting to committed events: outgoing webhooks and follow-up jobs.

Every event goes through `realtime.record_event`, which adds an `Event` row to the
session. A Session `before_commit` listener looks at the Event rows of the transaction
and, in that same transaction, writes one `webhook_deliveries` row per subscribed
endpoint (a transactional outbox: a delivery exists if and only if its event committed,
and a crash between commit and send loses nothing; the sweep finds it). After commit the
delivery jobs are queued. This needs no change to app/realtime.py.

Signature (what a receiver checks):
    X-Threadline-Timestamp: <unix seconds>
    X-Threadline-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from app.domain.webhook_targets import private_target
from app.infra.models import Customer, Event, Identity, WebhookDelivery, WebhookEndpoint, utcnow
from app.domain.errors import Conflict
from app.usecases.outbox import backoff_delay, revive_and_claim_due

log = logging.getLogger(__name__)

WEBHOOK_EVENTS = ("message.created", "conversation.created", "conversation.updated",
                  "customer.created", "customer.updated", "customer.merged", "deal.updated")
# events that send the customer through the suggestion scan (app/crm.scan_customer); so do
# a new handle of a customer and a new name (the scan's evidence), whoever wrote them
SCAN_EVENTS = ("customer.created",)
SCAN_KEY = "hooks.scan"
MAX_LOG_ENTRIES = 20
TIMEOUT = 10.0

# --- the session listener ----------------------------------------------------------------

def _pending_events(session: Session) -> list[Event]:
    return [obj for obj in session.new if isinstance(obj, Event)]


def _scan_changes(session: Session) -> bool:
    """Unflushed changes the suggestion scan looks at: a new handle, a renamed customer."""
    return any(isinstance(obj, (Identity, Customer)) for obj in session.new) or any(
        isinstance(obj, Customer) for obj in session.dirty)


def _scanned_customers(session: Session) -> set[int]:
    ids = {obj.customer_id for obj in session.new if isinstance(obj, Identity)}
    ids.update(obj.id for obj in session.dirty if isinstance(obj, Customer)
               and sa_inspect(obj).attrs.name.history.has_changes())
    ids.discard(None)
    return ids


def collect_events(session: Session, _flush_context) -> None:
    # session.new / session.dirty still hold what this flush wrote (ids assigned by now,
    # attribute history not yet reset)
    new = _pending_events(session)
    if new:
        session.info.setdefault("hooks.events", []).extend(new)
    scanned = _scanned_customers(session)
    if scanned:
        session.info.setdefault(SCAN_KEY, set()).update(scanned)


def queue_deliveries(session: Session) -> None:
    if not session.info.get("hooks.events") and not _pending_events(session) \
            and not session.info.get(SCAN_KEY) and not _scan_changes(session):
        return
    if _pending_events(session) or _scan_changes(session):
        session.flush()  # ids for the events added since the last flush
    events = [e for e in session.info.pop("hooks.events", [])
              if sa_inspect(e).persistent]  # rows of a rolled-back savepoint are gone
    scan_ids = set(session.info.pop(SCAN_KEY, ()))
    scan_ids.update(e.payload.get("id") for e in events
                    if e.type in SCAN_EVENTS and isinstance(e.payload, dict))
    if not events:
        if scan_ids:
            from app.infra.db import after_commit

            after_commit(session, lambda: _after_commit([], [], sorted(
                i for i in scan_ids if isinstance(i, int))))
        return
    deliveries: list[WebhookDelivery] = []
    webhook_events = [e for e in events if e.type in WEBHOOK_EVENTS]
    if webhook_events:
        endpoints = list(session.scalars(select(WebhookEndpoint)
                                         .where(WebhookEndpoint.active.is_(True))))
        now = utcnow()
        for ev in webhook_events:
            body = None
            for endpoint in endpoints:
                if endpoint.events and ev.type not in endpoint.events:
                    continue
                body = body or event_body(ev)
                deliveries.append(WebhookDelivery(
                    endpoint_id=endpoint.id, event_id=ev.id, event_type=ev.type, body=body,
                    status="pending", attempts=0, enqueued_at=now, log=[], created_at=now))
        if deliveries:
            session.add_all(deliveries)
            session.flush()
    from app.infra.db import after_commit

    delivery_ids = [d.id for d in deliveries]
    scan_list = sorted(i for i in scan_ids if isinstance(i, int))
    after_commit(session, lambda: _after_commit(events, delivery_ids, scan_list))


def drop_pending(session: Session) -> None:
    session.info.pop("hooks.events", None)
    session.info.pop(SCAN_KEY, None)


def _after_commit(events: list[Event], delivery_ids: list[int], scan_ids: list[Any]) -> None:
    from flask import has_app_context

    from app.infra.state import queue

    if not has_app_context():
        # a plain session outside the app (a script, the benchmark's seeding) has no queue:
        # the sweep delivers its webhooks later; suggestion scans are best effort
        return

    for delivery_id in delivery_ids:
        try:
            queue.enqueue("deliver_webhook", delivery_id)
        except Exception:  # the sweep queues it later
            log.exception("could not queue webhook delivery %s", delivery_id)
    for customer_id in scan_ids:
        if isinstance(customer_id, int):
            try:
                queue.enqueue("scan_customer", customer_id)
            except Exception:
                log.exception("could not queue scan of customer %s", customer_id)


# --- delivery ----------------------------------------------------------------------------

def event_body(ev: Event) -> str:
    return json.dumps({"id": ev.id, "type": ev.type,
                       "created_at": (ev.created_at or utcnow()).isoformat(),
                       "data": ev.payload}, ensure_ascii=False, separators=(",", ":"),
                      default=str)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str,
           tolerance: float = 300.0) -> bool:
    """What a receiver does (and what our tests do)."""
    try:
        if abs(time.time() - int(timestamp)) > tolerance:
            return False
    except (TypeError, ValueError):
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature or "")


def _claim(session: Session, delivery_id: int) -> bool:
    now = utcnow()
    result = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == "pending",
               or_(WebhookDelivery.next_attempt_at.is_(None),
                   WebhookDelivery.next_attempt_at <= now))
        .values(status="sending", locked_at=now, attempts=WebhookDelivery.attempts + 1)
        .execution_options(synchronize_session=False))
    session.commit()
    return result.rowcount == 1


class _Refused(Exception):
    pass


def signed_headers(secret: str, event_type: str, delivery_id: int, body: bytes,
                   user_agent: str) -> dict[str, str]:
    """The headers of one signed POST (outgoing webhooks and outside bots sign alike)."""
    timestamp = str(int(time.time()))
    return {"Content-Type": "application/json", "User-Agent": user_agent,
            "X-Threadline-Event": event_type, "X-Threadline-Delivery": str(delivery_id),
            "X-Threadline-Timestamp": timestamp,
            "X-Threadline-Signature": sign(secret, timestamp, body)}


def deliver_webhook(delivery_id: int) -> str:
    """One attempt: POST the signed body; 2xx delivers, anything else retries with backoff
    until jobs.max_attempts, then the delivery is failed (visible, replayable)."""
    import httpx

    from app.infra.state import config, db

    session = db.session
    if not _claim(session, delivery_id):
        return "skipped"
    delivery = session.get(WebhookDelivery, delivery_id)
    endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
    body = delivery.body.encode()
    headers = signed_headers(endpoint.secret, delivery.event_type, delivery.id, body,
                             "Threadline-Webhooks/1")
    session.commit()  # no transaction open while we wait on the network
    started = time.monotonic()
    status_code, error = None, None
    from app.infra.queues import Lease

    refused = private_target(endpoint.url)  # checked again: a name may resolve elsewhere now
    # the claim is renewed while we wait; a dead worker's lapses after jobs.lease seconds
    with Lease(db.engine, WebhookDelivery, [delivery_id], float(config["jobs"]["lease"])):
        try:
            if refused:
                raise _Refused(f"refused: {refused}")
            response = httpx.post(endpoint.url, content=body, headers=headers, timeout=TIMEOUT,
                                  follow_redirects=False)
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        except _Refused as exc:
            error = str(exc)[:500]
    entry = {"at": utcnow().isoformat(), "attempt": delivery.attempts,
             "status_code": status_code, "error": error,
             "ms": round((time.monotonic() - started) * 1000)}
    delivery = session.get(WebhookDelivery, delivery_id)
    delivery.log = [*delivery.log, entry][-MAX_LOG_ENTRIES:]
    delivery.response_status, delivery.locked_at = status_code, None
    if error is None:
        delivery.status, delivery.error, delivery.delivered_at = "delivered", None, utcnow()
        delivery.next_attempt_at = None
    elif delivery.attempts >= int(config["jobs"]["max_attempts"]):
        delivery.status, delivery.error = "failed", f"{error} (after {delivery.attempts} attempts)"
    else:
        delay = backoff_delay(delivery.attempts)
        delivery.status, delivery.error = "pending", error
        delivery.next_attempt_at = utcnow() + timedelta(seconds=delay)
        delivery.enqueued_at = None  # the sweep queues it when due
        log.info("webhook delivery %s: attempt %s failed (%s); retry in %.1fs",
                 delivery.id, delivery.attempts, error, delay)
    session.commit()
    return delivery.status


def sweep_webhooks() -> dict[str, int]:
    """Queue due retries and deliveries a dead worker left behind (run by the sweep)."""
    from app.infra.state import config, db, queue

    session = db.session
    now = utcnow()
    stale = now - timedelta(seconds=float(config["jobs"]["stale_after"]))
    lapsed = now - timedelta(seconds=float(config["jobs"]["lease"]))
    revived, due = revive_and_claim_due(session, WebhookDelivery, "pending", now, stale, lapsed)
    session.commit()
    for delivery_id in due:
        queue.enqueue("deliver_webhook", delivery_id)
    return {"revived": revived, "queued": len(due)}


def replay(session: Session, delivery: WebhookDelivery) -> WebhookDelivery:
    """An admin sends a delivery again (failed or delivered): a fresh round of attempts.
    Not while a worker is sending it (Conflict)."""
    from app.infra.db import after_commit
    from app.infra.state import queue

    if delivery.status == "sending":
        raise Conflict(None, "delivery is being sent right now")
    delivery.status, delivery.attempts, delivery.error = "pending", 0, None
    delivery.next_attempt_at, delivery.locked_at = None, None
    delivery.enqueued_at = utcnow()
    session.flush()
    delivery_id = delivery.id
    after_commit(session, lambda: queue.enqueue("deliver_webhook", delivery_id))
    return delivery
