"""Handles: a customer's ways to be reached (email, phone, Telegram id, WhatsApp id, site
chat visitor, site user). How each is written (normalized), and which channel kind can
address which kind of handle: one map, used by the CRM card (a handle's channels) and by
the outbox (where a reply can go), so the two never disagree."""
from __future__ import annotations

import re

import phonenumbers

from connectors.base import read_phone

from app.infra.models import Identity

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# channel kind -> the identity kinds it can address (a phone is reached on WhatsApp only:
# a Telegram bot cannot write to a phone number)
CHANNEL_IDENTITY_KINDS: dict[str, tuple[str, ...]] = {
    "email": ("email",),
    "telegram": ("telegram",),
    "whatsapp": ("whatsapp", "phone"),
    "webchat": ("webchat", "site_user"),
}
# identity kind -> the channel kinds that reach it (the card shows a handle's channels)
IDENTITY_CHANNEL_KINDS: dict[str, tuple[str, ...]] = {
    identity_kind: tuple(channel_kind for channel_kind, kinds in CHANNEL_IDENTITY_KINDS.items()
                         if identity_kind in kinds)
    for identity_kind in dict.fromkeys(k for kinds in CHANNEL_IDENTITY_KINDS.values() for k in kinds)
}


def can_reach(channel_kind: str, identity_kind: str) -> bool:
    return identity_kind in CHANNEL_IDENTITY_KINDS.get(channel_kind, ())


def default_region() -> str:
    from app.infra.state import config

    try:
        return str(config["identity"]["default_region"] or "RU").upper()
    except RuntimeError:  # outside an app context
        return "RU"


def normalize_phone(raw: str, region: str | None = None) -> str:
    """E.164 (`+79161234567`); a number without +country code is read in the default
    region (config identity.default_region). ValueError when it is no valid number."""
    text = str(raw or "").strip()
    if not text:
        raise ValueError("empty phone number")
    number = read_phone(text, region or default_region())   # "48601234567": +48 wins
    if number is None:
        raise ValueError("not a phone number")
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_handle(kind: str, value: str, region: str | None = None) -> str:
    value = str(value or "").strip()
    if not value:
        raise ValueError("empty value")
    if kind == "email":
        value = value.lower()
        if not EMAIL_RE.match(value):
            raise ValueError("not an email address")
        return value
    if kind == "phone":
        return normalize_phone(value, region)
    if kind == "whatsapp":  # wa_id: the number's digits, without "+"
        return normalize_phone(value if value.startswith("+") else "+" + value.lstrip("0"),
                               region).lstrip("+")
    if kind == "telegram":
        if not value.lstrip("-").isdigit():
            raise ValueError("a Telegram user id is a number")
        return value
    if kind in ("webchat", "site_user"):
        return value[:320]
    raise ValueError(f"unknown identity kind {kind!r}")


def handle_forms(identity: Identity) -> list[str]:
    """The "kind:value" forms one handle arrives as: a WhatsApp id and its phone number are
    one WhatsApp user (the connector sends the phone as the sender when the wa_id is one)."""
    forms = [f"{identity.kind}:{identity.value}"]
    try:
        if identity.kind == "whatsapp" and identity.value.isdigit():
            forms.append("phone:" + normalize_handle("phone", "+" + identity.value))
        elif identity.kind == "phone":
            forms.append("whatsapp:" + normalize_handle("whatsapp", identity.value))
    except ValueError:
        pass
    return forms
