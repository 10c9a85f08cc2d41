"""The boundary between channels and the app.

Connectors translate, nothing more: they verify a request, turn a raw payload into the
normalized records below, and send one `Outbound`. They never touch the database or
Socket.IO; `app/ingest` is the one door that stores what they produce.
"""
from __future__ import annotations

import base64
import binascii
import hmac
import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

import phonenumbers

# Identity kinds (DESIGN section 2). An identity is unique per (kind, value).
EMAIL = "email"          # lowercased address
PHONE = "phone"          # E.164
TELEGRAM = "telegram"    # Telegram user id
WHATSAPP = "whatsapp"    # wa_id (or business-scoped user id when there is no phone)
WEBCHAT = "webchat"      # widget visitor id
SITE_USER = "site_user"  # verified site user id (widget HMAC)
IDENTITY_KINDS = (EMAIL, PHONE, TELEGRAM, WHATSAPP, WEBCHAT, SITE_USER)


@dataclass(frozen=True)
class Handle:
    """One handle of a person on one kind of channel."""

    kind: str
    value: str
    verified: bool = True

    def __post_init__(self) -> None:
        if self.kind not in IDENTITY_KINDS:
            raise ValueError(f"unknown identity kind {self.kind!r}")
        if not self.value:
            raise ValueError("identity value must not be empty")


@dataclass(frozen=True)
class Button:
    """A quick-reply button sent with a message; its `id` comes back when the customer presses it.

    Channels limit both: Telegram's callback_data is at most 64 bytes, WhatsApp's reply button
    title 20 characters (and three buttons per message). Ids are namespaced by their owner:
    "kb:<article>:yes", "csat:<conversation>:5", "menu:<n>".
    """

    id: str
    title: str


@dataclass(frozen=True)
class InboundAttachment:
    filename: str
    content_type: str
    size: int | None = None
    data: bytes | None = None          # the bytes, when the payload carried them
    remote_ref: str | None = None      # e.g. Telegram file_id / WhatsApp media id, fetched later
    content_id: str | None = None      # email cid: for inline images
    error: str | None = None           # why it could not be stored (too large, ...)


@dataclass(frozen=True)
class Inbound:
    """A message a customer sent, normalized.

    `external_id` is the channel's id of the message; (channel, external_id) is unique, so a
    message delivered twice is stored once.
    """

    external_id: str
    sender: Handle
    sent_at: datetime
    text: str = ""
    html: str | None = None             # already sanitized by the connector (nh3)
    sender_name: str | None = None
    kind: Literal["message", "edit", "revoke", "reaction"] = "message"
    content_type: str = "text"          # text, photo, document, voice, location, contact, ...
    subject: str | None = None
    attachments: tuple[InboundAttachment, ...] = ()
    reply_to_external_id: str | None = None
    # Message-ids / tokens that may place the message in an existing conversation (email).
    thread_refs: tuple[str, ...] = ()
    # Weaker evidence of who this is: handles written in the text, shared contact cards...
    evidence: tuple[Handle, ...] = ()
    # Extra verified handles of the same sender (e.g. a Telegram user sharing their own phone).
    also_known_as: tuple[Handle, ...] = ()
    # First-touch attribution (UTM, referrer, deep-link payload, ad referral).
    source: dict[str, Any] | None = None
    automated: bool = False             # auto-reply, bounce, list mail: never auto-answered
    meta: dict[str, Any] = field(default_factory=dict)
    # the id of the Button the customer pressed (Telegram callback data, WhatsApp button_reply
    # id, a site chat quick reply); stored as the message's meta["button_id"]
    button_id: str | None = None


@dataclass(frozen=True)
class StatusUpdate:
    """The channel reports what happened to a message we sent."""

    external_id: str
    status: Literal["sent", "delivered", "read", "failed"]
    at: datetime
    error: str | None = None


@dataclass(frozen=True)
class Ignored:
    """A payload (or part of one) deliberately not turned into a message, and why."""

    reason: str


Record = Inbound | StatusUpdate | Ignored


@dataclass(frozen=True)
class OutboundAttachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Outbound:
    """One message to send. `idempotency_key` stays the same across retries."""

    idempotency_key: str
    to: Handle
    text: str
    html: str | None = None
    subject: str | None = None
    attachments: tuple[OutboundAttachment, ...] = ()
    reply_to_external_id: str | None = None
    # Email threading: Message-IDs of the conversation, oldest first.
    references: tuple[str, ...] = ()
    reply_token: str | None = None
    template: dict[str, Any] | None = None   # WhatsApp approved template
    automated: bool = False
    # quick-reply buttons (the message's meta["buttons"]); a channel without them lists the
    # titles in the text
    buttons: tuple[Button, ...] = ()
    # extra headers of a bulk email (List-Unsubscribe, List-Unsubscribe-Post, List-Id,
    # Precedence); channels without headers ignore them
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class SendResult:
    external_id: str
    extra_ids: tuple[str, ...] = ()      # e.g. further parts of a split Telegram text


class ChannelError(Exception):
    """Base for errors a connector raises while talking to its channel."""


class TransientError(ChannelError):
    """Worth retrying (network, 4xx SMTP, 429, 5xx)."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(ChannelError):
    """Retrying will not help (blocked by the user, window closed, 5xx SMTP)."""


class VerificationError(Exception):
    """A webhook request that is not authentic. Nothing may be stored."""

    def __init__(self, message: str, status: int = 403):
        super().__init__(message)
        self.status = status


class MalformedPayload(Exception):
    """An authentic payload we cannot understand: stored raw, marked failed."""


def constant_time_equals(a: str | bytes | None, b: str | bytes | None) -> bool:
    if a is None or b is None:
        return False
    if isinstance(a, str):
        a = a.encode()
    if isinstance(b, str):
        b = b.encode()
    return hmac.compare_digest(a, b)


def require(obj: dict, key: str, where: str = "payload") -> Any:
    """Fail loudly on a missing field (Zulip-style): the caller stores the raw payload as failed."""
    try:
        return obj[key]
    except (KeyError, TypeError):
        raise MalformedPayload(f"{where}: missing field {key!r}") from None


def normalize_phone(raw: Any, region: str | None = None, *,
                    digits_are_international: bool = True) -> str | None:
    """'+'-prefixed E.164 for a phone a channel hands over or a person wrote, else None.

    With '+' (or "00") the number is international. Without, it is read in `region` (a
    channel's or the app's default region, e.g. "RU": "8 916 123-45-67" is +79161234567);
    with no region it is international digits (Telegram contacts, wa_ids). A bare run of 11+
    digits is a channel's international id first (wa_id "4915112345678" must not read as a
    German national number) unless `digits_are_international` is False, as for what a visitor
    types into a form ("89161234567"). Possible (not only "valid") numbers are accepted: new
    ranges reach the channels before libphonenumber's metadata.
    """
    if raw is None:
        return None
    text = str(raw).strip()
    digits = "".join(ch for ch in text if ch.isdigit())
    if not digits:
        return None
    if text.startswith("+"):
        attempts = [(text, None)]
    else:
        international = ("+" + digits.lstrip("0"), None)
        if region is None:
            attempts = [international]
        elif digits_are_international and text.isdigit() and len(digits) > 10:
            attempts = [international, (text, region)]
        else:
            number = read_phone(text, region)
            if number is not None and phonenumbers.is_possible_number(number):
                return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            return None
    for candidate, candidate_region in attempts:
        try:
            number = phonenumbers.parse(candidate, candidate_region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_possible_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None


def read_phone(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    """A phone as a person wrote it, read in `region`; None when it is no phone at all.

    Written with its country code but no '+' ("48601234567", "48 601 234 567" typed in a
    Russian install), the national reading is no valid number while the international one
    is: then the international reading wins. A valid national reading always wins
    ("8 916 123-45-67" in RU).
    """
    text = str(text or "").strip()
    national: phonenumbers.PhoneNumber | None
    try:
        national = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        national = None
    if text.startswith("+") or (national is not None and phonenumbers.is_valid_number(national)):
        return national
    digits = "".join(ch for ch in text if ch.isdigit())
    if digits and not digits.startswith("0") and len(digits) >= 8:
        try:
            international = phonenumbers.parse("+" + digits, None)
        except phonenumbers.NumberParseException:
            international = None
        if international is not None and phonenumbers.is_valid_number(international):
            return international
    return national


# ---- payloads that are hard to read or too big --------------------------------------------

#: No authentic Telegram or WhatsApp payload nests deeper than a dozen levels.
MAX_JSON_DEPTH = 64
#: What one message may hold unless its connector says otherwise (email, WhatsApp).
DEFAULT_MAX_TEXT_CHARS = 65_536
NUL = "\x00"
NUL_REPLACEMENT = "\ufffd"      # PostgreSQL stores no NUL in text or jsonb


def load_json(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse a webhook body defensively: MalformedPayload (never RecursionError) for what is
    not UTF-8 JSON or nests deeper than `max_depth`. NUL characters become U+FFFD."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedPayload(f"body is not UTF-8: {exc}") from None
    try:
        value = json.loads(text)
    except RecursionError:
        raise MalformedPayload(f"JSON nested deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise MalformedPayload(f"body is not JSON: {exc}") from None
    if _nested_deeper(value, max_depth):
        raise MalformedPayload(f"JSON nested deeper than {max_depth} levels")
    return without_nul(value) if "\\u0000" in text else value


def _nested_deeper(value: Any, limit: int) -> bool:
    stack = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def without_nul(value: Any) -> Any:
    """`value` with every NUL character in its strings (and keys) replaced by U+FFFD; the same
    object when there is none (the common case costs one walk, no copy)."""
    return _replace_nul(value) if _contains_nul(value) else value


def _contains_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if NUL in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return False


def _replace_nul(value: Any) -> Any:
    # payloads that reach here were depth-checked (load_json) or built by our own code
    if isinstance(value, str):
        return value.replace(NUL, NUL_REPLACEMENT)
    if isinstance(value, dict):
        return {_replace_nul(k): _replace_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_nul(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_replace_nul(v) for v in value)
    return value


def raw_payload(body: bytes) -> dict[str, str]:
    """How an authentic but unreadable body is kept, byte for byte: as text when it is
    UTF-8 without NUL (storable anywhere), else base64."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and NUL not in text:
        return {"_unparsed": text}
    return {"_unparsed_base64": base64.b64encode(body).decode("ascii")}


def is_unparsed(payload: Any) -> bool:
    return isinstance(payload, dict) and ("_unparsed" in payload or "_unparsed_base64" in payload)


def unparsed_bytes(payload: Any) -> bytes | None:
    """The raw body kept by `raw_payload`, or None."""
    if not isinstance(payload, dict):
        return None
    if "_unparsed" in payload:
        return str(payload["_unparsed"]).encode("utf-8")
    if "_unparsed_base64" in payload:
        try:
            return base64.b64decode(payload["_unparsed_base64"], validate=True)
        except (binascii.Error, ValueError):
            return None
    return None


def cut_marker(chars: int, kept: int) -> str:
    return (f"\n\n[… message cut: it had {chars:,} characters, the first {kept:,} are shown; "
            f"the original is kept in the raw event]")


def bounded_inbound(inbound: Inbound, max_chars: int = DEFAULT_MAX_TEXT_CHARS) -> Inbound:
    """What one stored message may hold: no NUL characters in its text fields, and at most
    `max_chars` characters of text followed by a visible marker saying it was cut (the raw
    payload keeps everything). An HTML body more than 8 times that is dropped (the text
    stays). Returns `inbound` itself when nothing needed changing."""
    changes: dict[str, Any] = {}
    meta = dict(inbound.meta)
    for name in ("text", "html", "subject", "sender_name"):
        value = getattr(inbound, name)
        if isinstance(value, str) and NUL in value:
            changes[name] = value.replace(NUL, NUL_REPLACEMENT)
    text = changes.get("text", inbound.text) or ""
    if len(text) > max_chars:
        changes["text"] = text[:max_chars] + cut_marker(len(text), max_chars)
        meta["text_cut"] = {"chars": len(text), "kept": max_chars}
    html = changes.get("html", inbound.html)
    if html is not None and len(html) > 8 * max_chars:
        changes["html"] = None
        meta["html_dropped"] = {"chars": len(html)}
    if inbound.subject is not None and len(changes.get("subject", inbound.subject)) > 998:
        changes["subject"] = changes.get("subject", inbound.subject)[:998]
    clean_meta = without_nul(meta)
    if clean_meta != inbound.meta:
        changes["meta"] = clean_meta
    if inbound.attachments and any(NUL in a.filename for a in inbound.attachments):
        changes["attachments"] = tuple(replace(a, filename=a.filename.replace(NUL, NUL_REPLACEMENT))
                                       for a in inbound.attachments)
    return replace(inbound, **changes) if changes else inbound


def region_setting(value: Any) -> str:
    """A channel's `default_region` setting: a two-letter country code, uppercased."""
    region = str(value).strip().upper()
    if len(region) != 2 or not region.isalpha():
        raise ValueError("default_region must be a two-letter country code, e.g. PL")
    return region
