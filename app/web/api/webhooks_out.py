"""Outgoing webhooks (admins): endpoints, the delivery log, replay."""
from __future__ import annotations

import secrets

from apiflask import abort
from sqlalchemy import select

from app.domain.webhook_targets import private_target
from app.usecases.hooks import replay
from app.infra.models import AuditLog, WebhookDelivery, WebhookEndpoint
from app.infra.state import db
from app.web.api.base import bp, current_agent, token_auth
from app.web.api.paging import id_cursor, page
from app.web.api.customers import require_admin
from app.infra.schemas import (
    DeliveryOut,
    DeliveryPage,
    DeliveryQuery,
    WebhookEndpointCreated,
    WebhookEndpointIn,
    WebhookEndpointList,
    WebhookEndpointOut,
    WebhookEndpointPatch,
)


@bp.get("/webhooks")
@bp.auth_required(token_auth)
@bp.output(WebhookEndpointList)
@bp.doc(summary="Outgoing webhook endpoints (admins)")
def list_endpoints():
    require_admin()
    return {"items": list(db.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))}


@bp.post("/webhooks")
@bp.auth_required(token_auth)
@bp.input(WebhookEndpointIn, arg_name="data")
@bp.output(WebhookEndpointCreated, status_code=201)
@bp.doc(summary="Add an endpoint; the answer shows its signing secret once",
        description="Each event is POSTed as JSON {id, type, created_at, data} with "
                    "`X-Threadline-Timestamp: <unix seconds>` and `X-Threadline-Signature: "
                    "sha256=<hex HMAC-SHA256(secret, \"<timestamp>.<body>\")>`; a non-2xx "
                    "answer is retried with backoff. `events` empty: every event.")
def create_endpoint(data):
    agent = require_admin()
    _check_target(data["url"])
    endpoint = WebhookEndpoint(url=data["url"], events=data["events"],
                               description=data["description"], active=data["active"],
                               secret=data["secret"] or secrets.token_urlsafe(32))
    db.session.add(endpoint)
    db.session.flush()
    db.session.add(AuditLog(actor_id=agent.id, action="webhook.create", target_type="webhook",
                            target_id=endpoint.id, details={"url": endpoint.url}))
    db.session.commit()
    return endpoint


def _check_target(url: str) -> None:
    reason = private_target(url)
    if reason:
        abort(422, "url not allowed", detail={"json": {"url": [
            f"{reason}; loopback, link-local and private addresses need "
            "security.allow_private_webhook_urls"]}})


def _endpoint(endpoint_id: int) -> WebhookEndpoint:
    endpoint = db.session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        abort(404, "webhook not found")
    return endpoint


@bp.patch("/webhooks/<int:endpoint_id>")
@bp.auth_required(token_auth)
@bp.input(WebhookEndpointPatch, arg_name="data")
@bp.output(WebhookEndpointOut)
@bp.doc(summary="Change an endpoint's URL, events, description, or pause it (admins)")
def patch_endpoint(endpoint_id: int, data):
    require_admin()
    endpoint = _endpoint(endpoint_id)
    if "url" in data:
        _check_target(data["url"])
    for key, value in data.items():
        setattr(endpoint, key, value)
    db.session.commit()
    return endpoint


@bp.delete("/webhooks/<int:endpoint_id>")
@bp.auth_required(token_auth)
@bp.output({}, status_code=204)
@bp.doc(summary="Remove an endpoint and its delivery log (admins)")
def delete_endpoint(endpoint_id: int):
    agent = require_admin()
    endpoint = _endpoint(endpoint_id)
    db.session.add(AuditLog(actor_id=agent.id, action="webhook.delete", target_type="webhook",
                            target_id=endpoint.id, details={"url": endpoint.url}))
    db.session.delete(endpoint)
    db.session.commit()
    return ""


@bp.get("/webhook-deliveries")
@bp.auth_required(token_auth)
@bp.input(DeliveryQuery, location="query", arg_name="query")
@bp.output(DeliveryPage)
@bp.doc(summary="The delivery log, newest first: status, attempts, each attempt's answer")
def list_deliveries(query):
    require_admin()
    stmt = select(WebhookDelivery)
    if query["endpoint_id"]:
        stmt = stmt.where(WebhookDelivery.endpoint_id == query["endpoint_id"])
    if query["status"]:
        stmt = stmt.where(WebhookDelivery.status == query["status"])
    if query["cursor"]:
        stmt = stmt.where(WebhookDelivery.id < id_cursor(query["cursor"]))
    return page(stmt.order_by(WebhookDelivery.id.desc()), query["limit"])


@bp.get("/webhook-deliveries/<int:delivery_id>")
@bp.auth_required(token_auth)
@bp.output(DeliveryOut)
def get_delivery(delivery_id: int):
    require_admin()
    delivery = db.session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        abort(404, "delivery not found")
    return delivery


@bp.post("/webhook-deliveries/<int:delivery_id>/replay")
@bp.auth_required(token_auth)
@bp.output(DeliveryOut, status_code=202)
@bp.doc(summary="Send a delivery again (a fresh round of attempts)")
def replay_delivery(delivery_id: int):
    agent = require_admin()
    delivery = db.session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        abort(404, "delivery not found")
    replay(db.session, delivery)
    db.session.add(AuditLog(actor_id=agent.id, action="webhook.replay",
                            target_type="webhook_delivery", target_id=delivery.id,
                            details={"endpoint_id": delivery.endpoint_id,
                                     "event_id": delivery.event_id}))
    db.session.commit()
    return delivery
