"""The email `Connector`: settings, parse, send and the connection test."""
from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any, Mapping

from connectors import Connector
from connectors.base import (ChannelError, MalformedPayload, Outbound, Record, SendResult,
                             require)

from .imap import Mailbox
from .parse import parse_message
from .send import send_outbound, smtp_check
from .settings import (DEFAULTS, REQUIRED_KEYS, SECRET_KEYS, SETTING_KEYS, folders,
                       normalize_settings)


class EmailConnector(Connector):
    kind = "email"
    setting_keys = SETTING_KEYS
    secret_keys = SECRET_KEYS
    required_keys = REQUIRED_KEYS

    def default_settings(self) -> dict[str, Any]:
        return dict(DEFAULTS)

    def validate_settings(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        return normalize_settings(super().validate_settings(settings))

    def event_key(self, payload: Any, body: bytes) -> str:
        """The same fetched bytes are the same delivery, whatever folder/UID they came from."""
        return "sha256:" + hashlib.sha256(_raw(payload)).hexdigest()

    def parse(self, settings: Mapping[str, Any], payload: Any) -> list[Record]:
        """payload: {"raw": base64 of the message, "folder": ..., "uid": ...}."""
        inbound = parse_message(_raw(payload), settings)
        if isinstance(payload, Mapping):
            inbound.meta["imap_folder"] = payload.get("folder")
            inbound.meta["imap_uid"] = payload.get("uid")
        return [inbound]

    def send(self, settings: Mapping[str, Any], outbound: Outbound) -> SendResult:
        return send_outbound(settings, outbound)

    def test(self, settings: Mapping[str, Any]) -> str:
        """Log in to IMAP and SMTP; raise ChannelError with the failing side's message."""
        cfg = self.validate_settings(settings)
        parts = []
        with Mailbox(cfg) as box:
            for folder in folders(cfg):
                state = box.folder_state(folder)
                parts.append(f"{folder} {state.messages} messages "
                             f"(UIDVALIDITY {state.uidvalidity})")
        imap = "IMAP ok: " + ", ".join(parts)
        try:
            smtp = smtp_check(cfg)
        except ChannelError as exc:
            raise type(exc)(f"{imap}; SMTP failed: {exc}") from exc
        return f"{imap}; SMTP ok: {smtp}"


def _raw(payload: Any) -> bytes:
    encoded = require(payload, "raw", "email payload")
    if isinstance(encoded, (bytes, bytearray)):
        return bytes(encoded)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise MalformedPayload(f"email payload: 'raw' is not base64: {exc}") from None
