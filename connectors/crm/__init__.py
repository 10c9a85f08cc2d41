"""Signed upserts from a shop or CRM: orders, deals, notes and contact updates.

POST /webhooks/crm/<channel_id> with a JSON body, signed by the sender:

    X-Threadline-Signature: sha256=<hex HMAC-SHA256(channel secret, raw body)>

Body: one record `{"id": "evt-1", "type": "order", "data": {...}}` or several
`{"id": "evt-2", "records": [{"type": "deal", "data": {...}}, ...]}`. Types: order, deal,
note, contact; `data` is what the API's upsert endpoints take (`external_ref` makes a
repeated push an update). `id` makes a repeated delivery a no-op (without it the body's
sha256 does). Like every connector this only verifies and parses; app/crm applies.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Mapping

from .. import Connector as BaseConnector
from ..base import MalformedPayload, VerificationError, constant_time_equals

SIGNATURE_HEADER = "X-Threadline-Signature"
RECORD_TYPES = ("order", "deal", "note", "contact")


@dataclass(frozen=True)
class CrmUpsert:
    """One record to upsert: kind is order | deal | note | contact."""

    kind: str
    data: Mapping[str, Any]


def signature(secret: str, body: bytes) -> str:
    """What the sender computes."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class CrmConnector(BaseConnector):
    kind = "crm"
    setting_keys = ("secret",)
    customer_channel = False      # a shop's feed: nobody to answer
    secret_keys = frozenset({"secret"})
    required_keys = ("secret",)

    def default_settings(self) -> dict[str, Any]:
        return {"secret": secrets.token_urlsafe(32)}

    def verify_webhook(self, settings: Mapping[str, Any], headers: Mapping[str, str],
                       body: bytes) -> None:
        given = headers.get(SIGNATURE_HEADER)
        if not given:
            raise VerificationError(f"missing {SIGNATURE_HEADER}", status=401)
        secret = settings.get("secret") or ""
        if not secret or not constant_time_equals(signature(secret, body), given.strip()):
            raise VerificationError("bad signature", status=403)

    def event_key(self, payload: Any, body: bytes) -> str:
        if isinstance(payload, Mapping) and payload.get("id") not in (None, ""):
            return f"id:{payload['id']}"
        return "sha256:" + hashlib.sha256(body).hexdigest()

    def parse(self, settings: Mapping[str, Any], payload: Any) -> list[CrmUpsert]:
        if not isinstance(payload, Mapping):
            raise MalformedPayload("payload: expected a JSON object")
        if "records" in payload:
            items = payload["records"]
            if not isinstance(items, list) or not items:
                raise MalformedPayload("payload.records: expected a non-empty list")
        else:
            items = [payload]
        records = []
        for n, item in enumerate(items):
            where = f"records[{n}]" if "records" in payload else "payload"
            if not isinstance(item, Mapping):
                raise MalformedPayload(f"{where}: expected an object")
            kind = item.get("type") or item.get("kind")
            if kind not in RECORD_TYPES:
                raise MalformedPayload(f"{where}.type: one of {', '.join(RECORD_TYPES)}")
            data = item.get("data")
            if not isinstance(data, Mapping):
                raise MalformedPayload(f"{where}.data: expected an object")
            records.append(CrmUpsert(kind, dict(data)))
        return records

    def test(self, settings: Mapping[str, Any]) -> str:
        return "signed webhook: POST /webhooks/crm/<channel id> with X-Threadline-Signature"


Connector = CrmConnector
