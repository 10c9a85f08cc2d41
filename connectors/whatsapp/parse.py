"""Turn a WhatsApp Cloud API webhook body into `connectors.base` records.

One POST is a batch: entries x changes x (messages | statuses). Every piece becomes exactly
one record, so a batch is never half-ingested. Missing *structural* fields raise
`MalformedPayload` (the app stores the body raw and marks it failed); unknown message types
are kept as "unsupported" messages, because dropping a customer's words silently is worse
than showing an agent a placeholder.
"""
from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

from connectors.base import (
    EMAIL, PHONE, WHATSAPP, Handle, Ignored, Inbound, InboundAttachment, MalformedPayload,
    Record, StatusUpdate, normalize_phone, require,
)

OBJECT = "whatsapp_business_account"
MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")
# Our content_type vocabulary follows connectors.base ("photo", "voice", "contact", ...), so
# the inbox renders a WhatsApp photo like a Telegram one.
CONTENT_TYPES = {"image": "photo", "video": "video", "audio": "audio", "document": "document",
                 "sticker": "sticker", "location": "location", "contacts": "contact",
                 "text": "text", "interactive": "text", "button": "text", "order": "order"}
STATUS_MAP = {"sent": "sent", "delivered": "delivered", "read": "read", "played": "read",
              "failed": "failed"}


@dataclass(frozen=True)
class NumberChange:
    """A customer moved their WhatsApp account to a new phone number (system message).

    The app should attach `new` to the customer who owns `old` rather than create a stranger.
    """

    old: Handle
    new: Handle
    at: datetime
    external_id: str | None = None      # the system message's wamid, for dedupe and audit
    new_wa_id: str | None = None
    new_bsuid: str | None = None


# --- small helpers ---------------------------------------------------------------------------

def to_datetime(value: Any, where: str) -> datetime:
    """WhatsApp sends Unix seconds as strings; we hand out tz-aware UTC datetimes."""
    try:
        return datetime.fromtimestamp(int(value), tz=timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        raise MalformedPayload(f"{where}: bad timestamp {value!r}") from None


def e164(raw: str | None, region: str | None = None) -> str | None:
    """'+'-prefixed E.164 for a wa_id or a written number; None when it is not a phone
    (connectors.base.normalize_phone: digits alone are international, as wa_ids are)."""
    return normalize_phone(raw, region)


def _error_text(errors: Any) -> str:
    """'code title: details' for each error object WhatsApp attaches."""
    parts = []
    for err in errors if isinstance(errors, list) else []:
        if not isinstance(err, Mapping):
            continue
        title = err.get("title") or err.get("message") or "error"
        details = (err.get("error_data") or {}).get("details")
        text = f"{err.get('code', '?')} {title}"
        parts.append(f"{text}: {details}" if details and details != title else text)
    return "; ".join(parts)


# --- identity --------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Sender:
    handle: Handle
    name: str | None
    also_known_as: tuple[Handle, ...]
    meta: dict[str, Any]


def _contact_for(message: Mapping[str, Any], contacts: list[Any]) -> Mapping[str, Any]:
    """The contacts[] entry describing this message's sender (matched by wa_id or BSUID)."""
    wa_id, user_id = message.get("from"), message.get("from_user_id")
    for contact in contacts:
        if not isinstance(contact, Mapping):
            continue
        if (wa_id and contact.get("wa_id") == wa_id) or (
                user_id and contact.get("user_id") == user_id):
            return contact
    return {}


def _sender(message: Mapping[str, Any], contacts: list[Any], where: str) -> _Sender:
    contact = _contact_for(message, contacts)
    wa_id = message.get("from") or contact.get("wa_id")
    bsuid = message.get("from_user_id") or contact.get("user_id")
    if not wa_id and not bsuid:
        # A username user may hide the phone, but then the BSUID is there; neither is broken.
        require(message, "from", where)
    profile = contact.get("profile") or {}
    meta: dict[str, Any] = {}
    aka: list[Handle] = []
    phone = e164(wa_id)
    if wa_id:
        aka.append(Handle(WHATSAPP, wa_id))
        meta["wa_id"] = wa_id
    if bsuid:
        aka.append(Handle(WHATSAPP, bsuid))
        meta["bsuid"] = bsuid
    if contact.get("parent_user_id"):
        meta["parent_bsuid"] = contact["parent_user_id"]
    if profile.get("username"):
        meta["username"] = profile["username"]
    if phone:
        handle = Handle(PHONE, phone)
    else:
        # No phone (username user, or a sanitized sample): the WhatsApp id is the identity.
        handle = aka.pop(0)
    return _Sender(handle, profile.get("name") or None, tuple(aka), meta)


# --- message bodies --------------------------------------------------------------------------

@dataclass
class _Body:
    """What one message type contributes to an Inbound."""

    text: str = ""
    content_type: str = "text"
    kind: str = "message"
    target: str | None = None
    attachments: tuple[InboundAttachment, ...] = ()
    evidence: tuple[Handle, ...] = ()
    meta: dict[str, Any] | None = None
    button_id: str | None = None      # the reply button / list row / quick reply pressed


def _media_body(mtype: str, media: Mapping[str, Any], where: str) -> _Body:
    media_id = require(media, "id", f"{where}.{mtype}")
    mime = media.get("mime_type") or "application/octet-stream"
    caption = media.get("caption") or ""
    content_type = CONTENT_TYPES[mtype]
    if mtype == "audio" and media.get("voice"):
        content_type = "voice"
    filename = media.get("filename") or _default_filename(content_type, media_id, mime)
    attachment = InboundAttachment(filename=filename, content_type=mime, remote_ref=media_id,
                                   size=media.get("file_size"))
    info = {"id": media_id, "sha256": media.get("sha256"), "mime_type": mime,
            "caption": caption or None}
    if media.get("animated") is not None:
        info["animated"] = bool(media["animated"])
    return _Body(text=caption, content_type=content_type, attachments=(attachment,),
                 meta={"media": [info]})


def _default_filename(content_type: str, media_id: str, mime: str) -> str:
    ext = mimetypes.guess_extension(mime.split(";")[0].strip()) or ""
    return f"{content_type}-{media_id}{ext}"


def _location_body(loc: Mapping[str, Any]) -> _Body:
    lat, lon = loc.get("latitude"), loc.get("longitude")
    label = ", ".join(str(p) for p in (loc.get("name"), loc.get("address")) if p)
    where = f"{lat}, {lon}"
    text = f"📍 {label} ({where})" if label else f"📍 {where}"
    if loc.get("url"):
        text += f" {loc['url']}"
    location = {k: loc.get(k) for k in ("latitude", "longitude", "name", "address", "url")
                if loc.get(k) is not None}
    return _Body(text=text, content_type="location", meta={"location": location})


def _contacts_body(cards: list[Any], region: str | None) -> _Body:
    """Shared contact cards: readable text plus *unverified* evidence handles.

    A card says "this person knows that number", not "this is me", so nothing here is
    verified; the app turns it into a merge suggestion at most.
    """
    lines: list[str] = []
    evidence: list[Handle] = []
    for card in cards if isinstance(cards, list) else []:
        if not isinstance(card, Mapping):
            continue
        name = (card.get("name") or {}).get("formatted_name") or "(no name)"
        values: list[str] = []
        for phone in card.get("phones") or []:
            raw = phone.get("phone") or phone.get("wa_id")
            number = e164(raw, region)
            if number:
                evidence.append(Handle(PHONE, number, verified=False))
            if raw:
                values.append(raw)
        for email in card.get("emails") or []:
            address = (email.get("email") or "").strip().lower()
            if address:
                evidence.append(Handle(EMAIL, address, verified=False))
                values.append(address)
        lines.append(f"👤 {name}" + (f": {', '.join(values)}" if values else ""))
    return _Body(text="\n".join(lines), content_type="contact", evidence=tuple(evidence),
                 meta={"contacts": cards})


def _interactive_body(inter: Mapping[str, Any] | None, errors: str) -> _Body:
    if not isinstance(inter, Mapping):
        # Seen in the wild: type "interactive" with the object stripped and errors attached.
        return _unsupported_body("interactive", errors)
    itype = inter.get("type") or ""
    reply = inter.get(itype) if isinstance(inter.get(itype), Mapping) else {}
    if itype in ("button_reply", "list_reply"):
        info = {"type": itype, "id": reply.get("id"), "title": reply.get("title"),
                "description": reply.get("description")}
        return _Body(text=reply.get("title") or "", meta={"interactive": info},
                     button_id=str(reply["id"]) if reply.get("id") else None)
    if itype == "nfm_reply":      # a WhatsApp Flow was submitted
        info = {"type": itype, "name": reply.get("name"),
                "response_json": reply.get("response_json")}
        return _Body(text=reply.get("body") or "Form submitted", meta={"interactive": info})
    return _unsupported_body(f"interactive {itype}", errors)


def _order_body(order: Mapping[str, Any]) -> _Body:
    items = order.get("product_items") or []
    parts, totals = [], {}
    for item in items:
        qty, price, cur = item.get("quantity", 1), item.get("item_price"), item.get("currency")
        parts.append(f"{qty} × {item.get('product_retailer_id')}"
                     + (f" @ {price} {cur}" if price is not None else ""))
        if price is not None:
            totals[cur] = totals.get(cur, 0) + qty * price
    text = "🛒 Order: " + ", ".join(parts)
    if totals:
        text += "; total " + ", ".join(f"{v:g} {k}" for k, v in totals.items())
    if order.get("text"):
        text += f"\n{order['text']}"
    info = {"catalog_id": order.get("catalog_id"), "text": order.get("text") or "",
            "product_items": items}
    return _Body(text=text, content_type="order", meta={"order": info})


def _unsupported_body(what: str, errors: str) -> _Body:
    text = f"[Unsupported WhatsApp message: {what}]"
    if errors:
        text += f" ({errors})"
    return _Body(text=text, content_type="unsupported")


def _content(message: Mapping[str, Any], mtype: str, where: str, region: str | None,
             errors: str) -> _Body:
    """The body of one message (also used for the new content inside an edit)."""
    obj = message.get(mtype)
    if mtype == "text":
        return _Body(text=require(require(message, "text", where), "body", f"{where}.text"))
    if mtype in MEDIA_TYPES:
        return _media_body(mtype, require(message, mtype, where), where)
    if mtype == "location":
        return _location_body(require(message, "location", where))
    if mtype == "contacts":
        return _contacts_body(require(message, "contacts", where), region)
    if mtype == "interactive":
        return _interactive_body(obj, errors)
    if mtype == "button":   # quick-reply button of a template
        button = require(message, "button", where)
        return _Body(text=button.get("text") or "", meta={"button": dict(button)},
                     button_id=str(button["payload"]) if button.get("payload") else None)
    if mtype == "order":
        return _order_body(require(message, "order", where))
    what = (obj or {}).get("type") if isinstance(obj, Mapping) else None
    return _unsupported_body(what or mtype, errors)


def _reaction_body(message: Mapping[str, Any], where: str) -> _Body:
    reaction = require(message, "reaction", where)
    target = require(reaction, "message_id", f"{where}.reaction")
    emoji = reaction.get("emoji") or ""   # absent or "" both mean "reaction removed"
    return _Body(text=emoji, kind="reaction", content_type="reaction", target=target,
                 meta={"reaction_removed": not emoji})


def _edit_body(message: Mapping[str, Any], where: str, region: str | None,
               errors: str) -> _Body:
    edit = require(message, "edit", where)
    target = require(edit, "original_message_id", f"{where}.edit")
    new = require(edit, "message", f"{where}.edit")
    body = _content(new, require(new, "type", f"{where}.edit.message"), f"{where}.edit.message",
                    region, errors)
    body.kind, body.target = "edit", target
    return body


def _revoke_body(message: Mapping[str, Any], where: str) -> _Body:
    revoke = require(message, "revoke", where)
    target = require(revoke, "original_message_id", f"{where}.revoke")
    return _Body(kind="revoke", content_type="revoke", target=target)


# --- records ---------------------------------------------------------------------------------

def _system_record(message: Mapping[str, Any], sender: _Sender, at: datetime,
                   wamid: str) -> Record:
    system = message.get("system") or {}
    stype = system.get("type")
    if stype in ("user_changed_number", "customer_changed_number"):
        new_wa_id = system.get("wa_id") or system.get("new_wa_id")
        if new_wa_id:
            phone = e164(new_wa_id)
            new = Handle(PHONE, phone) if phone else Handle(WHATSAPP, new_wa_id)
            return NumberChange(old=sender.handle, new=new, at=at, external_id=wamid,
                                new_wa_id=new_wa_id, new_bsuid=system.get("user_id"))
    # customer_identity_changed = the security code changed: nothing for an agent to act on.
    return Ignored(f"whatsapp system message {wamid} ({stype}): {system.get('body', '')}")


def _message_record(message: Any, contacts: list[Any], errors: str, where: str,
                    region: str | None) -> Record:
    wamid = require(message, "id", where)
    at = to_datetime(require(message, "timestamp", where), where)
    mtype = require(message, "type", where)
    sender = _sender(message, contacts, where)
    errors = _error_text(message.get("errors")) or errors
    if mtype == "system":
        return _system_record(message, sender, at, wamid)
    if mtype == "reaction":
        body = _reaction_body(message, where)
    elif mtype == "edit":
        body = _edit_body(message, where, region, errors)
    elif mtype == "revoke":
        body = _revoke_body(message, where)
    else:
        body = _content(message, mtype, where, region, errors)
    return _inbound(message, sender, at, wamid, mtype, body, errors)


def _inbound(message: Mapping[str, Any], sender: _Sender, at: datetime, wamid: str,
             mtype: str, body: _Body, errors: str) -> Inbound:
    meta: dict[str, Any] = {"wa_type": mtype, **sender.meta, **(body.meta or {})}
    context = message.get("context") or {}
    for flag in ("forwarded", "frequently_forwarded"):
        if context.get(flag):
            meta[flag] = True
    if context.get("referred_product"):
        meta["referred_product"] = context["referred_product"]
    if body.target:
        meta["target_external_id"] = body.target
    if errors:
        meta["errors"] = errors
    source = None
    if isinstance(message.get("referral"), Mapping):
        # Click-to-WhatsApp ad: this is the customer's first-touch attribution.
        source = {"channel": "whatsapp", "ad": dict(message["referral"])}
    # For reactions, edits and revokes the target is the message acted on; otherwise a quote.
    reply_to = body.target or context.get("id")
    return Inbound(
        external_id=wamid, sender=sender.handle, sent_at=at, text=body.text,
        sender_name=sender.name, kind=body.kind, content_type=body.content_type,  # type: ignore[arg-type]
        attachments=body.attachments, reply_to_external_id=reply_to, evidence=body.evidence,
        also_known_as=sender.also_known_as, source=source, meta=meta,
        button_id=body.button_id if body.kind == "message" else None)


def _status_record(status: Any, where: str) -> Record:
    sid = require(status, "id", where)
    raw = require(status, "status", where)
    at = to_datetime(require(status, "timestamp", where), where)
    mapped = STATUS_MAP.get(raw)
    if mapped is None:   # e.g. "deleted", "warning": nothing our delivery states express
        return Ignored(f"whatsapp status {raw!r} for {sid}")
    error = _error_text(status.get("errors")) if mapped == "failed" else None
    return StatusUpdate(external_id=sid, status=mapped, at=at,  # type: ignore[arg-type]
                        error=error or ("failed" if mapped == "failed" else None))


def _change_records(change: Any, where: str, region: str | None) -> list[Record]:
    field = require(change, "field", where)
    value = require(change, "value", where)
    if field != "messages":
        return [Ignored(f"whatsapp webhook field {field!r} is not handled")]
    contacts = value.get("contacts") or []
    errors = _error_text(value.get("errors"))
    messages = value.get("messages")
    statuses = value.get("statuses")
    if messages is None and statuses is None:
        reason = f"whatsapp change without messages or statuses{': ' + errors if errors else ''}"
        return [Ignored(reason)]
    records: list[Record] = []
    for i, message in enumerate(messages or []):
        records.append(_message_record(message, contacts, errors, f"{where}.messages[{i}]",
                                       region))
    for i, status in enumerate(statuses or []):
        records.append(_status_record(status, f"{where}.statuses[{i}]"))
    return records


def parse_payload(payload: Any, region: str | None = None) -> list[Record | NumberChange]:
    """Every record in one webhook body, in payload order."""
    obj = require(payload, "object")
    if obj != OBJECT:
        return [Ignored(f"webhook object {obj!r} is not {OBJECT!r}")]
    entries = require(payload, "entry")
    if not isinstance(entries, list):
        raise MalformedPayload("payload: 'entry' is not a list")
    records: list[Record | NumberChange] = []
    for e, entry in enumerate(entries):
        changes = require(entry, "changes", f"entry[{e}]")
        for c, change in enumerate(changes):
            records.extend(_change_records(change, f"entry[{e}].changes[{c}]", region))
    return records


def phone_number_ids(payload: Any) -> set[str]:
    """The business numbers a body is addressed to; tolerant, because it only routes."""
    found: set[str] = set()
    entries = payload.get("entry") if isinstance(payload, Mapping) else None
    for entry in entries if isinstance(entries, list) else []:
        changes = entry.get("changes") if isinstance(entry, Mapping) else None
        for change in changes if isinstance(changes, list) else []:
            value = change.get("value") if isinstance(change, Mapping) else None
            metadata = value.get("metadata") if isinstance(value, Mapping) else None
            if isinstance(metadata, Mapping) and metadata.get("phone_number_id"):
                found.add(str(metadata["phone_number_id"]))
    return found
