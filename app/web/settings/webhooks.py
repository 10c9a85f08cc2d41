"""`/settings/webhooks`: outgoing webhooks (URL, events, pause), the signing secret shown once,
the delivery log with each attempt's answer, and replay. The same rules as
`/api/v1/webhooks` (WebhookEndpointIn)."""
from __future__ import annotations

import secrets

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from marshmallow import ValidationError
from sqlalchemy import select

from app.domain.audit import audit
from app.infra.models import WebhookDelivery, WebhookEndpoint
from app.infra.schemas import WEBHOOK_EVENTS, WebhookEndpointIn
from app.infra.state import db
from app.usecases.hooks import replay
from app.web.settings import admin_required, bp, end_read



def N_(text: str) -> str:
    """Marks a string for extraction; translated when the page is rendered."""
    return text


FIELD_ERRORS = {"url": N_("An http(s) URL, e.g. https://crm.example.com/hooks/threadline."),
                "events": N_("Pick events from the list."),
                "description": N_("At most 200 characters.")}


def _page(status: int = 200, new: dict | None = None, errors: dict | None = None,
          created: dict | None = None):
    rows = list(db.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))
    deliveries = list(db.session.scalars(select(WebhookDelivery)
                                         .order_by(WebhookDelivery.id.desc()).limit(50)))
    urls = {e.id: e.url for e in rows}
    end_read()
    return render_template("settings/webhooks.html", rows=rows, deliveries=deliveries,
                           urls=urls, events=WEBHOOK_EVENTS, new=new or {"events": []},
                           errors=errors or {}, created=created, section="webhooks"), status


@bp.get("/webhooks")
@admin_required
def webhooks():
    return _page()


@bp.post("/webhooks")
@admin_required
def webhook_create():
    form = request.form
    new = {"url": form.get("url", "").strip(), "events": form.getlist("events"),
           "description": form.get("description", "").strip()}
    try:
        data = WebhookEndpointIn().load(new)
    except ValidationError as exc:
        return _page(422, new=new, errors={k: _(FIELD_ERRORS[k]) if k in FIELD_ERRORS else _("Invalid.")
                                           for k in exc.messages})
    endpoint = WebhookEndpoint(url=data["url"], events=data["events"],
                               description=data["description"], active=True,
                               secret=secrets.token_urlsafe(32))
    db.session.add(endpoint)
    db.session.flush()
    audit(current_user._get_current_object(), "webhook.create", "webhook", endpoint.id,
          after={"url": endpoint.url, "events": endpoint.events})
    db.session.commit()
    return _page(201, created={"url": endpoint.url, "secret": endpoint.secret})


def _endpoint(endpoint_id: int) -> WebhookEndpoint:
    endpoint = db.session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        abort(404)
    return endpoint


@bp.post("/webhooks/<int:endpoint_id>/active")
@admin_required
def webhook_active(endpoint_id: int):
    endpoint = _endpoint(endpoint_id)
    active = request.form.get("active") == "true"
    if endpoint.active != active:
        audit(current_user._get_current_object(), "webhook.update", "webhook", endpoint.id,
              before={"active": endpoint.active}, after={"active": active})
        endpoint.active = active
    db.session.commit()
    flash(_("Webhook resumed.") if active else _("Webhook paused."), "ok")
    return redirect(url_for("settings.webhooks"))


@bp.post("/webhooks/<int:endpoint_id>/delete")
@admin_required
def webhook_delete(endpoint_id: int):
    endpoint = _endpoint(endpoint_id)
    audit(current_user._get_current_object(), "webhook.delete", "webhook", endpoint.id,
          before={"url": endpoint.url})
    db.session.delete(endpoint)
    db.session.commit()
    flash(_("Webhook deleted."), "ok")
    return redirect(url_for("settings.webhooks"))


@bp.post("/webhook-deliveries/<int:delivery_id>/replay")
@admin_required
def webhook_replay(delivery_id: int):
    delivery = db.session.get(WebhookDelivery, delivery_id) or abort(404)
    if delivery.status != "sending":
        replay(db.session, delivery)
        audit(current_user._get_current_object(), "webhook.replay", "webhook_delivery",
              delivery.id, endpoint_id=delivery.endpoint_id, event_id=delivery.event_id)
        db.session.commit()
        flash(_("Delivery queued again."), "ok")
    else:
        flash(_("This delivery is being sent right now."), "error")
    return redirect(url_for("settings.webhooks"))
