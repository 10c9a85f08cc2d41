"""Inbound webhooks: verify, store raw, answer at once; processing happens in a job."""
from __future__ import annotations

import hashlib
import json
import logging

from flask import Blueprint, abort, jsonify, request

from connectors import get_connector
from connectors.base import MalformedPayload, VerificationError

from .ingest import receive
from .logs import register_channel_secrets
from .models import Channel
from .state import db

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")

WEBHOOK_KINDS = ("telegram", "whatsapp")


def _channel(kind: str, channel_id: int) -> Channel:
    channel = db.session.get(Channel, channel_id)
    if kind not in WEBHOOK_KINDS or channel is None or channel.kind != kind or not channel.active:
        abort(404)
    return channel


@bp.post("/<kind>/<int:channel_id>")
def inbound(kind: str, channel_id: int):
    channel = _channel(kind, channel_id)
    connector = get_connector(kind)
    register_channel_secrets(connector, channel.settings)
    body = request.get_data(cache=False)
    try:
        connector.verify_webhook(channel.settings, request.headers, body)
    except VerificationError as exc:
        log.warning("webhook %s/%s rejected: %s", kind, channel_id, exc)
        return jsonify(error=str(exc)), exc.status
    try:
        payload = json.loads(body)
        external_id = connector.event_key(payload, body)
    except (ValueError, MalformedPayload) as exc:
        # authentic but unreadable: keep it raw (it fails in processing, visible to admins)
        # and answer 200 so the channel stops retrying
        log.warning("webhook %s/%s: unreadable payload kept raw: %s", kind, channel_id, exc)
        payload = {"_unparsed": body.decode("utf-8", errors="replace")}
        external_id = "sha256:" + hashlib.sha256(body).hexdigest()
    result = receive(channel, external_id, payload, process="queue")
    return jsonify(ok=True, duplicate=result.duplicate), 200
