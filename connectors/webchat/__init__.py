"""Site chat widget. The widget's Socket.IO namespace (app/web/widget/socket.py) hands visitor messages
to `app/ingest` as payloads of the shape parsed here; replies reach the visitor through the
app's realtime layer, so `send` only confirms the hand-over.

Payload (what app/web/widget/socket.py stores raw):

    {"visitor_id": "...", "message_id": "...", "text": "...", "sent_at": "ISO-8601",
     "user": {"id", "name", "email", "phone", "hash"},      # window.Threadline.user
     "prechat": {"name", "email", "phone"},                 # the pre-chat form
     "page": {"url", "referrer", "title", "lang"},          # first-touch page context
     "default_region": "RU",                                # the app's, for typed phones
     "button_id": "kb:3:yes",                               # a quick reply pressed
     "files": [{"name", "type", "data"}]}                   # base64, already size-checked

Only `user.id` with a valid `user.hash` (HMAC-SHA256 of the id with the widget secret,
compared in constant time) becomes a verified identity; everything else a visitor types is
weak evidence (merge suggestions), never a link.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from datetime import datetime, time, timezone
from typing import Any, Mapping
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .. import Connector as BaseConnector
from ..base import (
    EMAIL,
    PHONE,
    SITE_USER,
    WEBCHAT,
    Handle,
    Inbound,
    InboundAttachment,
    MalformedPayload,
    Outbound,
    SendResult,
    constant_time_equals,
    normalize_phone,
    region_setting,
    require,
)

MAX_TEXT = 4000
DEFAULT_MAX_FILE_BYTES = 5 * 1024 * 1024
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
CLICK_IDS = ("gclid", "fbclid", "yclid")
PRECHAT_MODES = ("false", "true", "email", "phone")
TRUE = ("1", "true", "yes", "on")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^\s*(?P<d1>[a-z]{3})(?:\s*-\s*(?P<d2>[a-z]{3}))?\s+"
                    r"(?P<h1>\d{1,2}):(?P<m1>\d{2})\s*-\s*(?P<h2>\d{1,2}):(?P<m2>\d{2})\s*$")


def user_hash(secret: str, user_id: str) -> str:
    """What the site's server computes: HMAC-SHA256(widget secret, user id), hex."""
    return hmac.new(secret.encode(), str(user_id).encode(), hashlib.sha256).hexdigest()


def verified_user_id(settings: Mapping[str, Any], user: Mapping[str, Any] | None) -> str | None:
    if not user or not user.get("id") or not settings.get("secret"):
        return None
    expected = user_hash(settings["secret"], str(user["id"]))
    return str(user["id"]) if constant_time_equals(expected, str(user.get("hash") or "")) else None


# --- settings helpers ----------------------------------------------------------------------

def normalize_origin(value: str | None) -> str | None:
    """'https://Shop.example.com/path' -> 'https://shop.example.com'; None if not an origin."""
    if not value:
        return None
    try:
        parts = urlsplit(str(value).strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def allowed_origins(settings: Mapping[str, Any]) -> list[str]:
    raw = settings.get("allowed_origins") or ""
    items = raw if isinstance(raw, (list, tuple)) else re.split(r"[\s,]+", str(raw))
    return [o for o in (normalize_origin(i) for i in items if i) if o]


def origin_allowed(settings: Mapping[str, Any], origin: str | None,
                   own_origin: str | None = None) -> bool:
    """An empty allowed_origins setting allows any site; Threadline's own origin (the demo
    page) is always allowed."""
    origin = normalize_origin(origin)
    if own_origin and origin and origin == normalize_origin(own_origin):
        return True
    allowed = allowed_origins(settings)
    if not allowed:
        return True
    return origin is not None and origin in allowed


def flag(settings: Mapping[str, Any], key: str) -> bool:
    return str(settings.get(key, "")).strip().lower() in TRUE


def prechat_mode(settings: Mapping[str, Any]) -> str:
    """'false' (no form), 'true' (name + email or phone), 'email' or 'phone' (that one is
    required)."""
    value = str(settings.get("prechat") or "false").strip().lower()
    if value in ("1", "yes", "on"):
        return "true"
    return value if value in PRECHAT_MODES else "false"


def max_file_bytes(settings: Mapping[str, Any]) -> int:
    try:
        return max(1, int(settings.get("max_file_bytes") or DEFAULT_MAX_FILE_BYTES))
    except (TypeError, ValueError):
        return DEFAULT_MAX_FILE_BYTES


def _parse_hours(spec: str) -> list[tuple[set[int], time, time]]:
    rules = []
    for part in (p for p in re.split(r"[;,]", spec.lower()) if p.strip()):
        match = _HOURS.match(part)
        if not match or match["d1"] not in _DAYS or (match["d2"] and match["d2"] not in _DAYS):
            raise ValueError(f"business_hours: cannot read {part.strip()!r} "
                             "(write e.g. 'mon-fri 09:00-18:00; sat 10:00-14:00')")
        first = _DAYS.index(match["d1"])
        last = _DAYS.index(match["d2"] or match["d1"])
        days = set(range(first, last + 1)) if first <= last else \
            set(range(first, 7)) | set(range(0, last + 1))
        rules.append((days, time(int(match["h1"]), int(match["m1"])),
                      time(min(int(match["h2"]), 23), int(match["m2"]))
                      if int(match["h2"]) < 24 else time(23, 59, 59)))
    return rules


def within_business_hours(settings: Mapping[str, Any], now: datetime | None = None) -> bool:
    """No business_hours setting: always open."""
    spec = str(settings.get("business_hours") or "").strip()
    if not spec:
        return True
    try:
        zone = ZoneInfo(str(settings.get("timezone") or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = (now or datetime.now(timezone.utc)).astimezone(zone)
    return any(local.weekday() in days and start <= local.time().replace(tzinfo=None) < end
               for days, start, end in _parse_hours(spec))


def attribution(page: Mapping[str, Any] | None, channel_kind: str = "webchat") -> dict[str, Any] | None:
    """First-contact source for the CRM card: page URL, referrer, UTM tags and ad click ids
    (gclid, fbclid, yclid)."""
    if not isinstance(page, Mapping) or not page.get("url"):
        return None
    url = str(page["url"])[:2000]
    query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=False))
    source: dict[str, Any] = {"channel": channel_kind, "page_url": url}
    if page.get("referrer"):
        source["referrer"] = str(page["referrer"])[:2000]
    if page.get("title"):
        source["page_title"] = str(page["title"])[:300]
    utm = {k[4:]: query[k][:300] for k in UTM_KEYS if query.get(k)}
    if utm:
        source["utm"] = utm
    ads = {k: query[k][:500] for k in CLICK_IDS if query.get(k)}
    if ads:
        source["ad"] = ads
    return source


def _files(payload: Mapping[str, Any], limit: int) -> tuple[InboundAttachment, ...]:
    out = []
    for item in payload.get("files") or ():
        name = str(item.get("name") or "file")[:300]
        content_type = str(item.get("type") or "application/octet-stream")[:120]
        try:
            data = base64.b64decode(str(item.get("data") or ""), validate=True)
        except (binascii.Error, ValueError):
            raise MalformedPayload(f"files: {name!r} is not base64") from None
        if len(data) > limit:
            out.append(InboundAttachment(name, content_type, size=len(data),
                                         error=f"too large: {len(data)} bytes (limit {limit})"))
        else:
            out.append(InboundAttachment(name, content_type, size=len(data), data=data))
    return tuple(out)


class WebchatConnector(BaseConnector):
    kind = "webchat"
    setting_keys = ("secret", "allowed_origins", "require_verified", "prechat",
                    "business_hours", "timezone", "away_message", "max_file_bytes",
                    "email_channel", "default_region")
    secret_keys = frozenset({"secret"})

    def default_settings(self) -> dict[str, Any]:
        return {"secret": secrets.token_urlsafe(32), "allowed_origins": "",
                "require_verified": "false", "prechat": "false"}

    def validate_settings(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        settings = super().validate_settings(settings)
        raw = settings.get("allowed_origins") or ""
        items = raw if isinstance(raw, (list, tuple)) else re.split(r"[\s,]+", str(raw))
        bad = [i for i in items if i and normalize_origin(i) is None]
        if bad:
            raise ValueError(f"allowed_origins: {', '.join(bad)} is not an origin "
                             "(write e.g. https://shop.example.com)")
        settings["allowed_origins"] = " ".join(allowed_origins(settings))
        if str(settings.get("prechat") or "false").strip().lower() not in (*PRECHAT_MODES, "1", "yes", "on", "0", "no", "off"):
            raise ValueError("prechat: choose false, true (name + email or phone), email or phone")
        if settings.get("default_region"):
            settings["default_region"] = region_setting(settings["default_region"])
        if settings.get("business_hours"):
            _parse_hours(str(settings["business_hours"]))
        if settings.get("timezone"):
            try:
                ZoneInfo(str(settings["timezone"]))
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"timezone: unknown time zone {settings['timezone']!r}") from None
        if settings.get("max_file_bytes") not in (None, ""):
            try:
                if int(settings["max_file_bytes"]) < 1:
                    raise ValueError
            except (TypeError, ValueError):
                raise ValueError("max_file_bytes: a positive number of bytes") from None
        return settings

    def event_key(self, payload: Any, body: bytes) -> str:
        return str(require(payload, "message_id"))

    def parse(self, settings: Mapping[str, Any], payload: Any) -> list[Inbound]:
        visitor = str(require(payload, "visitor_id"))
        user = payload.get("user") or {}
        prechat = payload.get("prechat") or {}
        site_user = verified_user_id(settings, user)
        evidence = []
        email = user.get("email") or prechat.get("email")
        phone = user.get("phone") or prechat.get("phone")
        if email:
            evidence.append(Handle(EMAIL, str(email).strip().lower()[:320], verified=False))
        if phone:
            # typed by a person: "+7 916 123-45-67", "8 (916) 123-45-67" in the channel's
            # default_region, else the app's (identity.default_region, in the payload)
            region = settings.get("default_region") or payload.get("default_region") or None
            normalized = normalize_phone(str(phone)[:40], region, digits_are_international=False)
            if normalized:  # what is no phone number matches nobody: kept as typed in meta
                evidence.append(Handle(PHONE, normalized, verified=False))
            phone = normalized or str(phone).strip()[:40]
        sent_at = payload.get("sent_at")
        files = _files(payload, max_file_bytes(settings))
        text = str(payload.get("text") or "")[:MAX_TEXT]
        if not text and not files:
            raise MalformedPayload("payload: neither text nor files")
        meta: dict[str, Any] = {"visitor_id": visitor}
        if email:
            meta["contact_email"] = str(email).strip().lower()[:320]
        if phone:
            meta["contact_phone"] = str(phone).strip()[:40]
        page = payload.get("page") or {}
        if page.get("url"):
            meta["page_url"] = str(page["url"])[:2000]
        return [Inbound(
            external_id=str(require(payload, "message_id")),
            sender=Handle(SITE_USER, site_user) if site_user else Handle(WEBCHAT, visitor),
            also_known_as=(Handle(WEBCHAT, visitor),) if site_user else (),
            sent_at=datetime.fromisoformat(sent_at) if sent_at else datetime.now(timezone.utc),
            text=text,
            content_type="text" if not files else (
                "photo" if all(f.content_type.startswith("image/") for f in files) else "document"),
            attachments=files,
            sender_name=(user.get("name") or prechat.get("name") or None),
            evidence=tuple(evidence),
            source=attribution(page),
            meta=meta,
            # a quick reply the visitor pressed under an agent's or the bot's message
            button_id=str(payload["button_id"])[:64] if payload.get("button_id") else None,
        )]

    def send(self, settings: Mapping[str, Any], outbound: Outbound) -> SendResult:
        return SendResult(external_id=f"webchat:{outbound.idempotency_key}")

    def test(self, settings: Mapping[str, Any]) -> str:
        origins = settings.get("allowed_origins") or "any origin"
        return f"webchat widget ok: allowed origins {origins}"


Connector = WebchatConnector
