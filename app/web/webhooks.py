"""Inbound webhooks: verify, store raw, answer at once; processing happens in a job.

The light acknowledgement path (issue 15): the channel comes from the process's cache
(app/infra/channel_cache.py, no ORM object per request), then verification, one INSERT of
the raw payload and its commit, and one wake of the drain."""
from __future__ import annotations

import hashlib
import logging

from flask import Blueprint, Response, abort, jsonify, request

from connectors import get_connector
from connectors.base import (
    MalformedPayload,
    VerificationError,
    is_unparsed,
    load_json,
    raw_payload,
)

from app.usecases.ingest import receive
from app.infra.channel_cache import ChannelSnapshot, cache_for
from app.infra.logs import register_channel_secrets
from app.infra.state import db
from app.web import read_body, too_large

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")

WEBHOOK_KINDS = ("telegram", "whatsapp", "crm")
# kinds whose secret is a header, not a signature of the body (checked before reading it)
HEADER_VERIFIED = ("telegram",)


def _channel(kind: str, channel_id: int) -> ChannelSnapshot:
    if kind not in WEBHOOK_KINDS:
        abort(404)
    channel = cache_for(db).get(db.session, channel_id)
    if channel is None or channel.kind != kind or not channel.active:
        abort(404)
    return channel


@bp.post("/<kind>/<int:channel_id>")
def inbound(kind: str, channel_id: int):
    channel = _channel(kind, channel_id)
    connector = get_connector(kind)
    register_channel_secrets(connector, channel.settings)
    try:
        if kind in HEADER_VERIFIED:  # refused before a byte of the body is read
            connector.verify_webhook(channel.settings, request.headers, b"")
        if request.content_length is not None \
                and request.content_length > (request.max_content_length or 0) > 0:
            return too_large(request.max_content_length)
        body = read_body(request.max_content_length)  # a chunked body past the limit: 413
        if body is None:
            return too_large(request.max_content_length)
        if kind not in HEADER_VERIFIED:
            connector.verify_webhook(channel.settings, request.headers, body)
    except VerificationError as exc:
        log.warning("webhook %s/%s rejected: %s", kind, channel_id, exc)
        return jsonify(error=str(exc)), exc.status
    try:
        payload = load_json(body)             # depth-limited; NUL becomes U+FFFD
        external_id = connector.event_key(payload, body)
    except (ValueError, RecursionError, MalformedPayload) as exc:
        # authentic but unreadable: keep the bytes raw (it fails in processing, visible to
        # admins, replayable) and answer 200 so the channel stops retrying
        log.warning("webhook %s/%s: unreadable payload kept raw: %s", kind, channel_id, exc)
        payload = raw_payload(body)
        external_id = "sha256:" + hashlib.sha256(body).hexdigest()
    if kind == "whatsapp" and not is_unparsed(payload):
        return _receive_whatsapp(channel, payload, external_id)
    result = receive(channel, external_id, payload, process="queue")
    return jsonify(ok=True, duplicate=result.duplicate), 200


@bp.get("/whatsapp/<int:channel_id>")
def whatsapp_subscription(channel_id: int):
    """Meta's subscription handshake: the challenge echoed as plain text."""
    channel = _channel("whatsapp", channel_id)
    from connectors.whatsapp import verify_subscription

    try:
        challenge = verify_subscription(channel.settings, request.args.get("hub.mode"),
                                        request.args.get("hub.verify_token"),
                                        request.args.get("hub.challenge"))
    except VerificationError as exc:
        return jsonify(error=str(exc)), exc.status
    return Response(challenge, mimetype="text/plain")


def _receive_whatsapp(channel: ChannelSnapshot, payload: dict, body_key: str):
    """Several numbers may share one Meta app (and so one signed delivery): each number's
    changes are stored under the channel configured for that phone_number_id."""
    from connectors.whatsapp import phone_number_ids

    by_number = {str(c.settings.get("phone_number_id")): c
                 for c in cache_for(db).active_of_kind(db.session, "whatsapp")}
    numbers = phone_number_ids(payload)
    targets = {n: by_number.get(n, channel) for n in numbers} or {"": channel}
    duplicate = True
    for number, target in targets.items():
        part = _changes_for_number(payload, number) if len(targets) > 1 else payload
        result = receive(target, f"{body_key}:{number}" if number else body_key, part,
                         process="queue")
        duplicate = duplicate and result.duplicate
    return jsonify(ok=True, duplicate=duplicate), 200


def _changes_for_number(payload: dict, number: str) -> dict:
    entries = []
    for entry in payload.get("entry") or []:
        changes = [c for c in entry.get("changes") or []
                   if str(((c.get("value") or {}).get("metadata") or {}).get("phone_number_id")) == number]
        if changes:
            entries.append({**entry, "changes": changes})
    return {**payload, "entry": entries}
