"""Telegram: a bot receives customers' private messages by long polling or by webhook.

Public surface for the app:
- `Connector` (kind "telegram"): settings, webhook verification, parse, send, test.
- `fetch_updates`, `set_webhook`, `delete_webhook`, `download_file`: sync helpers for the
  polling loop, the CLI and attachment fetching.
- `ReachabilityChange`: parse() returns it when a user blocks / unblocks the bot.
- `PollingConflict`: getUpdates answered 409 (another poller, or a webhook is set).
"""
from __future__ import annotations

import json
import re
import secrets
from typing import Any, Mapping
from urllib.parse import urlparse

import connectors
from connectors.base import (
    MalformedPayload,
    Outbound,
    SendResult,
    VerificationError,
    constant_time_equals,
    require,
)

from .api import (
    DEFAULT_API_BASE_URL,
    answer_callback,
    DOWNLOAD_LIMIT,
    TEXT_LIMIT,
    PollingConflict,
    delete_webhook,
    describe_bot,
    download_file,
    fetch_updates,
    send,
    send_async,
    submit,
    set_webhook,
    split_text,
)
from .parse import ALLOWED_UPDATES, ReachabilityChange, TelegramRecord, normalize_phone, parse_update

__all__ = [
    "ALLOWED_UPDATES", "DOWNLOAD_LIMIT", "TEXT_LIMIT", "Connector", "PollingConflict",
    "ReachabilityChange", "answer_callback", "delete_webhook", "download_file", "fetch_updates", "normalize_phone",
    "set_webhook", "split_text",
]

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
_TOKEN_RE = re.compile(r"^\d+:[A-Za-z0-9_-]+$")
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")   # what setWebhook accepts
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # Flask's headers are case-insensitive, a plain dict is not: look up either way.
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def _bool_setting(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"allow_groups: expected true or false, got {value!r}")


class Connector(connectors.Connector):
    kind = "telegram"
    max_text_chars = 4096          # Telegram's own limit for one message
    setting_keys = ("token", "mode", "secret_token", "api_base_url", "public_url", "allow_groups")
    secret_keys = frozenset({"token", "secret_token"})
    required_keys = ("token",)

    def default_settings(self) -> dict[str, Any]:
        return {
            "mode": "polling",
            "secret_token": secrets.token_urlsafe(32),
            "api_base_url": DEFAULT_API_BASE_URL,
        }

    def validate_settings(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        clean = super().validate_settings(settings)
        if not _TOKEN_RE.match(str(clean["token"]).strip()):
            # Never echo the token itself: it is a secret.
            raise ValueError("token: expected the form 123456789:AA... as given by @BotFather")
        clean["token"] = str(clean["token"]).strip()
        mode = str(clean.get("mode") or "polling").strip().lower()
        if mode not in ("polling", "webhook"):
            raise ValueError(f"mode: must be polling or webhook, got {mode!r}")
        clean["mode"] = mode
        secret = clean.get("secret_token")
        if secret is not None and not _SECRET_RE.match(str(secret)):
            raise ValueError("secret_token: 1-256 characters of A-Z, a-z, 0-9, _ and -")
        for key in ("api_base_url", "public_url"):
            if clean.get(key):
                clean[key] = self._url(key, str(clean[key]))
        if mode == "webhook" and not clean.get("public_url"):
            raise ValueError("public_url: required in webhook mode (Telegram must reach us)")
        if mode == "webhook" and not secret:
            raise ValueError("secret_token: required in webhook mode")
        if "allow_groups" in clean:
            clean["allow_groups"] = _bool_setting(clean["allow_groups"])
        return clean

    @staticmethod
    def _url(key: str, value: str) -> str:
        parsed = urlparse(value.strip())
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"{key}: expected an http(s) URL, got {value!r}")
        return value.strip().rstrip("/")

    def verify_webhook(self, settings: Mapping[str, Any], headers: Mapping[str, str],
                       body: bytes) -> None:
        expected = settings.get("secret_token")
        if not expected:
            raise VerificationError("telegram channel has no secret_token: cannot verify",
                                    status=403)
        given = _header(headers, SECRET_HEADER)
        if given is None:
            raise VerificationError(f"missing {SECRET_HEADER} header", status=403)
        if not constant_time_equals(given, str(expected)):
            raise VerificationError(f"wrong {SECRET_HEADER} header", status=403)

    def event_key(self, payload: Any, body: bytes) -> str:
        if payload is None:
            try:
                payload = json.loads(body)
            except (ValueError, UnicodeDecodeError) as exc:
                raise MalformedPayload(f"update is not JSON: {exc}") from None
        return str(require(payload, "update_id", "update"))

    def parse(self, settings: Mapping[str, Any], payload: Any) -> list[TelegramRecord]:  # type: ignore[override]
        return parse_update(settings, payload)

    def send(self, settings: Mapping[str, Any], outbound: Outbound) -> SendResult:
        return send(settings, outbound)

    async def send_async(self, settings: Mapping[str, Any], outbound: Outbound) -> SendResult:
        """`send` as a coroutine; run it (and the caller's own awaits) through `submit`."""
        return await send_async(settings, outbound)

    def submit(self, coro):
        """Run a coroutine on the connector's event loop (one per process); its future."""
        return submit(coro)

    def download(self, settings: Mapping[str, Any], remote_ref: str, max_bytes: int,
                 hints: Mapping[str, Any]) -> tuple[bytes, str]:
        # the Bot API serves at most 20 MB; larger files stay a placeholder with the reason
        data, _filename = download_file(settings, remote_ref, min(max_bytes, DOWNLOAD_LIMIT))
        return data, str(hints.get("mime_type") or "application/octet-stream")

    def test(self, settings: Mapping[str, Any]) -> str:
        return describe_bot(settings)
