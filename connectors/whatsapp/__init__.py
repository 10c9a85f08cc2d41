"""WhatsApp Cloud API connector: verify webhooks, parse batches, send through the Graph API.

Module functions the app calls directly: `verify_subscription` (GET handshake),
`phone_number_ids` (route a body to its channel), `mark_read`, `download_media`,
`window_open`. `NumberChange` is the extra record `parse` yields for "user changed number".
"""
from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Mapping

from connectors import Connector as BaseConnector
from connectors.base import (
    Outbound, Record, SendResult, VerificationError, constant_time_equals, region_setting,
)

from .graph import (
    DEFAULT_BASE_URL, DEFAULT_VERSION, describe_number, download_media, mark_read,
    send_outbound, window_open,
)
from .parse import NumberChange, parse_payload, phone_number_ids

__all__ = ["Connector", "NumberChange", "verify_subscription", "verify_signature",
           "phone_number_ids", "mark_read", "download_media", "window_open"]

SIGNATURE_HEADER = "X-Hub-Signature-256"


def verify_subscription(settings: Mapping[str, Any], mode: str | None, token: str | None,
                        challenge: str | None) -> str:
    """Meta's GET handshake: echo `hub.challenge` only to someone who knows verify_token."""
    expected = settings.get("verify_token")
    if mode != "subscribe" or not expected or not constant_time_equals(token, expected):
        raise VerificationError("WhatsApp subscription verification failed", status=403)
    return challenge or ""


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup that works for dicts and werkzeug Headers alike."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def verify_signature(settings: Mapping[str, Any], headers: Mapping[str, str],
                     body: bytes) -> None:
    """X-Hub-Signature-256 must be HMAC-SHA256(app_secret, exact raw body)."""
    header = _header(headers, SIGNATURE_HEADER)
    if not header:
        raise VerificationError(f"missing {SIGNATURE_HEADER}", status=401)
    secret = settings.get("app_secret")
    if not secret:
        # Never accept a body we cannot check.
        raise VerificationError("app_secret is not configured", status=403)
    algo, _, given = header.strip().partition("=")
    expected = hmac.new(str(secret).encode(), body, hashlib.sha256).hexdigest()
    if algo.lower() != "sha256" or not constant_time_equals(given.lower(), expected):
        raise VerificationError(f"{SIGNATURE_HEADER} does not match the body", status=403)


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


class Connector(BaseConnector):
    kind = "whatsapp"
    setting_keys = ("phone_number_id", "business_account_id", "access_token", "app_secret",
                    "verify_token", "api_base_url", "api_version", "mark_read", "templates",
                    "default_region")
    secret_keys = frozenset({"access_token", "app_secret", "verify_token"})
    required_keys = ("phone_number_id", "access_token", "app_secret", "verify_token")

    # The module functions, reachable from the instance `get_connector("whatsapp")` returns.
    verify_subscription = staticmethod(verify_subscription)
    phone_number_ids = staticmethod(phone_number_ids)
    mark_read = staticmethod(mark_read)
    download_media = staticmethod(download_media)
    window_open = staticmethod(window_open)

    def default_settings(self) -> dict[str, Any]:
        return {"api_base_url": DEFAULT_BASE_URL, "api_version": DEFAULT_VERSION}

    def validate_settings(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        result = super().validate_settings(settings)
        for key in ("phone_number_id", "business_account_id"):
            if result.get(key) is not None:
                result[key] = str(result[key]).strip()
                if not result[key].isdigit():
                    raise ValueError(f"{key} must be the numeric id from Meta's dashboard")
        if "mark_read" in result:
            result["mark_read"] = _as_bool(result["mark_read"])
        if isinstance(result.get("templates"), str):
            # `--set templates='[...]'` arrives as text; a list of names or objects is meant.
            try:
                result["templates"] = json.loads(result["templates"])
            except ValueError:
                result["templates"] = [t.strip() for t in result["templates"].split(",")
                                       if t.strip()]
        if result.get("default_region"):
            result["default_region"] = region_setting(result["default_region"])
        return result

    def verify_webhook(self, settings: Mapping[str, Any], headers: Mapping[str, str],
                       body: bytes) -> None:
        verify_signature(settings, headers, body)

    def event_key(self, payload: Any, body: bytes) -> str:
        # A batch has no id of its own; Meta redelivers the same bytes, messages dedupe by wamid.
        return hashlib.sha256(body).hexdigest()

    def parse(self, settings: Mapping[str, Any], payload: Any) -> list[Record]:
        return parse_payload(payload, settings.get("default_region"))  # type: ignore[return-value]

    def send(self, settings: Mapping[str, Any], outbound: Outbound) -> SendResult:
        return send_outbound(settings, outbound)

    def download(self, settings: Mapping[str, Any], remote_ref: str, max_bytes: int,
                 hints: Mapping[str, Any]) -> tuple[bytes, str]:
        return download_media(settings, remote_ref, hints.get("sha256"), max_bytes)

    def test(self, settings: Mapping[str, Any]) -> str:
        return describe_number(settings)
