"""Site chat widget. The widget's Socket.IO namespace hands visitor messages to
`app/ingest` as payloads of the shape parsed here; replies reach the visitor through the
app's realtime layer, so `send` only confirms the hand-over."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timezone
from typing import Any, Mapping

from .. import Connector as BaseConnector
from ..base import (
    EMAIL,
    PHONE,
    SITE_USER,
    WEBCHAT,
    Handle,
    Inbound,
    Outbound,
    SendResult,
    constant_time_equals,
    require,
)


def user_hash(secret: str, user_id: str) -> str:
    """What the site's server computes: HMAC-SHA256(widget secret, user id), hex."""
    return hmac.new(secret.encode(), str(user_id).encode(), hashlib.sha256).hexdigest()


def verified_user_id(settings: Mapping[str, Any], user: Mapping[str, Any] | None) -> str | None:
    if not user or not user.get("id") or not settings.get("secret"):
        return None
    expected = user_hash(settings["secret"], str(user["id"]))
    return str(user["id"]) if constant_time_equals(expected, str(user.get("hash") or "")) else None


class WebchatConnector(BaseConnector):
    kind = "webchat"
    setting_keys = ("secret", "allowed_origins", "require_verified", "prechat")
    secret_keys = frozenset({"secret"})

    def default_settings(self) -> dict[str, Any]:
        return {"secret": secrets.token_urlsafe(32), "allowed_origins": "",
                "require_verified": "false", "prechat": "false"}

    def event_key(self, payload: Any, body: bytes) -> str:
        return str(require(payload, "message_id"))

    def parse(self, settings: Mapping[str, Any], payload: Any) -> list[Inbound]:
        visitor = str(require(payload, "visitor_id"))
        user = payload.get("user") or {}
        site_user = verified_user_id(settings, user)
        evidence = []
        if user.get("email"):
            evidence.append(Handle(EMAIL, str(user["email"]).strip().lower(), verified=False))
        if user.get("phone"):
            evidence.append(Handle(PHONE, str(user["phone"]).strip(), verified=False))
        sent_at = payload.get("sent_at")
        return [Inbound(
            external_id=str(require(payload, "message_id")),
            sender=Handle(SITE_USER, site_user) if site_user else Handle(WEBCHAT, visitor),
            also_known_as=(Handle(WEBCHAT, visitor),) if site_user else (),
            sent_at=datetime.fromisoformat(sent_at) if sent_at else datetime.now(timezone.utc),
            text=str(require(payload, "text")),
            sender_name=user.get("name") or None,
            evidence=tuple(evidence),
            source=payload.get("page") or None,
        )]

    def send(self, settings: Mapping[str, Any], outbound: Outbound) -> SendResult:
        return SendResult(external_id=f"webchat:{outbound.idempotency_key}")

    def test(self, settings: Mapping[str, Any]) -> str:
        origins = settings.get("allowed_origins") or "any origin"
        return f"webchat widget ok: allowed origins {origins}"


Connector = WebchatConnector
