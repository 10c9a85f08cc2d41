"""The boundary between channels and the app.

Connectors translate, nothing more: they verify a request, turn a raw payload into the
normalized records below, and send one `Outbound`. They never touch the database or
Socket.IO; `app/ingest` is the one door that stores what they produce.
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass, field
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


def region_setting(value: Any) -> str:
    """A channel's `default_region` setting: a two-letter country code, uppercased."""
    region = str(value).strip().upper()
    if len(region) != 2 or not region.isalpha():
        raise ValueError("default_region must be a two-letter country code, e.g. PL")
    return region
