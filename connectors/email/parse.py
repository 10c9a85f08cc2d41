"""Raw RFC 5322 bytes -> one normalized `Inbound`.

Mail in the wild is broken in every way the RFCs forbid, so the rule here is: never raise on
a message. Each step degrades to the best text it can (a wrong charset becomes the detector's
guess, a multipart without boundaries becomes its raw text, a bad date becomes the
Received date or now) and notes what it did in meta["parse_warnings"].
"""
from __future__ import annotations

import base64
import binascii
import email
import hashlib
import mimetypes
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email import policy
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any, Mapping

import nh3

from connectors.base import EMAIL, Handle, Inbound, InboundAttachment

from .autodetect import classify
from .charset import decode_bytes, decode_header_value, unescape_surrogates
from .quotes import html_to_text, normalize_subject, split_quoted
from .settings import normalize_settings

_MSGID = re.compile(r"<([^<>\s]+)>")
_REPLY_TOKEN = re.compile(r"^reply\+([A-Za-z0-9][A-Za-z0-9._=-]*)@(.+)$", re.IGNORECASE)
# Report parts carry machine data for classify(); they are not customer attachments.
_REPORT_PARTS = {"message/delivery-status", "message/disposition-notification",
                 "message/feedback-report", "text/rfc822-headers", "message/rfc822-headers",
                 "message/global-delivery-status", "message/global-headers"}
_HTML_TAGS = nh3.ALLOWED_TAGS | {"font", "center", "span", "div"}
_URL_SCHEMES = nh3.ALLOWED_URL_SCHEMES | {"cid"}  # inline images stay as cid: references
# Mail layout lives in inline styles and old presentational attributes; without them
# Outlook/Gmail html is unreadable. Only properties that cannot move content out of its
# box (no position, z-index, transform) or load anything (url() values are dropped) stay.
_HTML_ATTRIBUTES = {
    **{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()},
    "*": {"style", "dir", "lang", "title", "align"},
    "font": {"color", "face", "size"},
    "table": {"width", "border", "cellpadding", "cellspacing", "bgcolor", "align"},
    "td": {"width", "height", "valign", "bgcolor", "align", "colspan", "rowspan"},
    "th": {"width", "height", "valign", "bgcolor", "align", "colspan", "rowspan"},
    "tr": {"valign", "bgcolor"},
    "img": {"src", "alt", "width", "height", "title"},
}
_STYLE_PROPERTIES = {
    "color", "background-color", "font", "font-family", "font-size", "font-style",
    "font-weight", "text-align", "text-decoration", "text-indent", "line-height",
    "letter-spacing", "white-space", "vertical-align", "width", "max-width", "height",
    "margin", "margin-top", "margin-bottom", "margin-left", "margin-right", "padding",
    "padding-top", "padding-bottom", "padding-left", "padding-right", "border",
    "border-top", "border-bottom", "border-left", "border-right", "border-color",
    "border-style", "border-width", "border-collapse", "list-style-type", "direction",
}


@dataclass
class _Body:
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[InboundAttachment] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def texts(self) -> tuple[str, str | None]:
        """(complete plain text, raw html). Html-only mail gets its text from the html."""
        html = "\n".join(self.html) if self.html else None
        full_text = "\n\n".join(t.strip("\n") for t in self.plain if t.strip())
        if not full_text and html:
            full_text = html_to_text(html)
        return full_text, html


def parse_message(raw: bytes, settings: Mapping[str, Any] | None = None) -> Inbound:
    """Parse one message as fetched from IMAP. Raises only on a non-bytes argument."""
    if not isinstance(raw, (bytes, bytearray)):
        raise TypeError(f"parse_message needs bytes, got {type(raw).__name__}")
    raw = bytes(raw)
    cfg = normalize_settings(settings or {})
    msg = _repair(email.message_from_bytes(raw, policy=policy.default))
    body = _Body()
    _collect(msg, body, cfg["max_attachment_bytes"], top=True)
    full_text, html = body.texts()
    visible, quoted = split_quoted(full_text)

    subject_raw = header(msg, "Subject")
    subject = decode_header_value(subject_raw) if subject_raw is not None else None
    name, address = _sender(msg)
    message_id = _first_msgid(header(msg, "Message-ID"))
    in_reply_to = _msgids(header_all(msg, "In-Reply-To"))
    references = _msgids(header_all(msg, "References"))
    automated, auto_meta = _classify(msg, address, subject or "", body.warnings)

    meta: dict[str, Any] = {
        "full_text": full_text,
        "quoted_text": quoted,
        "normalized_subject": normalize_subject(subject),
        "message_id": message_id,
        "in_reply_to": in_reply_to,
        "references": references,
        "to": _addresses(msg, "To"),
        "cc": _addresses(msg, "Cc"),
        "reply_to": _addresses(msg, "Reply-To"),
        **auto_meta,
    }
    sent_at = _sent_at(msg, body.warnings)
    if body.warnings:
        meta["parse_warnings"] = body.warnings
    return Inbound(
        external_id=message_id or "sha256:" + hashlib.sha256(raw).hexdigest(),
        sender=Handle(EMAIL, address),
        sender_name=name or None,
        sent_at=sent_at,
        text=visible,
        html=_sanitize(html),
        subject=subject,
        attachments=tuple(body.attachments),
        reply_to_external_id=(in_reply_to[-1] if in_reply_to else None),
        thread_refs=_thread_refs(msg, cfg.get("reply_domain"), in_reply_to, references),
        evidence=_evidence(visible, address, cfg.get("reply_domain")),
        automated=automated,
        meta=meta,
    )


def _classify(msg: Message, sender: str, subject: str,
              warnings: list[str]) -> tuple[bool, dict[str, Any]]:
    try:
        return classify(msg, sender, subject)
    except Exception as exc:  # noqa: BLE001 - an unreadable report is still a message
        warnings.append(f"automation check failed: {type(exc).__name__}: {exc}")
        return False, {}


def _sanitize(html: str | None) -> str | None:
    if not html:
        return None
    cleaned = nh3.clean(html, tags=_HTML_TAGS, attributes=_HTML_ATTRIBUTES,
                        url_schemes=_URL_SCHEMES,
                        filter_style_properties=_STYLE_PROPERTIES).strip()
    return cleaned or None


# --- headers --------------------------------------------------------------------------------

def header_all(msg: Message, name: str) -> list[str]:
    """Raw values (8-bit bytes as surrogates) of every `name` header, unparsed.

    Raw on purpose: policy.default's parsed header objects turn undeclared 8-bit bytes into
    U+FFFD before our detector can see them, and can choke on malformed address lists.
    """
    lname = name.lower()
    return [str(v) for k, v in msg.raw_items() if k.lower() == lname]


def header(msg: Message, name: str) -> str | None:
    values = header_all(msg, name)
    return values[0] if values else None


def _addresses(msg: Message, name: str) -> list[str]:
    return [addr for _, addr in _parsed_addresses(header_all(msg, name))]


def _parsed_addresses(values: list[str]) -> list[tuple[str, str]]:
    """(decoded display name, lowercased address) pairs; unparseable parts are dropped."""
    out = []
    for value in values:
        unfolded = unescape_surrogates(re.sub(r"\r?\n[ \t]*", " ", value))
        for name, addr in getaddresses([unfolded]):
            addr = addr.strip().strip("<>").strip().lower()
            if addr:
                out.append((decode_header_value(name).strip().strip('"').strip(), addr))
    return out


def _sender(msg: Message) -> tuple[str, str]:
    for name in ("From", "Sender", "Reply-To", "Return-Path"):
        pairs = _parsed_addresses(header_all(msg, name))
        with_at = [p for p in pairs if "@" in p[1]]
        if with_at or pairs:
            display, addr = (with_at or pairs)[0]
            return display, addr
    # No address anywhere: still a message someone should see; a fixed placeholder keeps
    # all such mail on one identity instead of crashing ingest.
    return "", "unknown@invalid"


def _first_msgid(value: str | None) -> str | None:
    ids = _msgids([value] if value else [])
    if ids:
        return ids[0]
    token = (value or "").strip().strip("<>").strip()
    return token if token and not any(c.isspace() for c in token) else None


def _msgids(values: list[str]) -> list[str]:
    """Message-ids in header order, without <>; bare ids (no brackets) are accepted too."""
    out: list[str] = []
    for value in values:
        value = unescape_surrogates(value)
        found = _MSGID.findall(value)
        if not found:
            found = [t for t in re.split(r"[\s,]+", value) if "@" in t]
        for mid in found:
            if mid not in out:
                out.append(mid)
    return out


def _thread_refs(msg: Message, reply_domain: str | None, in_reply_to: list[str],
                 references: list[str]) -> tuple[str, ...]:
    refs: list[str] = []
    for name in ("To", "Cc", "Delivered-To", "X-Original-To"):
        for _, addr in _parsed_addresses(header_all(msg, name)):
            m = _REPLY_TOKEN.match(addr)
            if m and (not reply_domain or m.group(2).lower() == reply_domain):
                refs.append(f"token:{m.group(1)}")
    # Most recent first: the last In-Reply-To id is the message being answered, References
    # grow to the right (RFC 5322 3.6.4).
    refs.extend(reversed(in_reply_to))
    refs.extend(reversed(references))
    index = _thread_index(header(msg, "Thread-Index"))
    if index:
        refs.append(index)
    return tuple(dict.fromkeys(refs))


_EMAIL_IN_TEXT = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


def _evidence(visible: str, sender: str, reply_domain: str | None) -> tuple[Handle, ...]:
    """Addresses the customer wrote in their own words ("my work address is ..."): weak,
    unverified evidence for a merge suggestion. Quoted history and signatures are already
    folded away, and our own addresses are not evidence of anything."""
    found = []
    for addr in _EMAIL_IN_TEXT.findall(visible[:20000]):
        addr = addr.strip(".").lower()
        domain = addr.rpartition("@")[2]
        if addr != sender and domain != reply_domain and addr not in found:
            found.append(addr)
    return tuple(Handle(EMAIL, a, verified=False) for a in found[:10])


def _thread_index(value: str | None) -> str | None:
    """Outlook's Thread-Index: its first 22 bytes identify the conversation."""
    if not value:
        return None
    try:
        data = base64.b64decode(re.sub(r"\s+", "", value), validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(data) < 22:
        return None
    return "thread-index:" + base64.b64encode(data[:22]).decode("ascii")


def _sent_at(msg: Message, warnings: list[str]) -> datetime:
    now = datetime.now(timezone.utc)
    parsed = _parse_date(header(msg, "Date"), now)
    if parsed:
        return parsed
    warnings.append("missing or invalid Date header")
    for received in header_all(msg, "Received"):
        parsed = _parse_date(received.rpartition(";")[2], now)
        if parsed:
            return parsed
    return now


def _parse_date(value: str | None, now: datetime) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(unescape_surrogates(value).strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    # Clients with broken clocks send year 3609; such a date would sort the message forever
    # on top, so it is treated as absent.
    if not datetime(1980, 1, 1, tzinfo=timezone.utc) <= parsed <= now + timedelta(days=2):
        return None
    return parsed


# --- body -----------------------------------------------------------------------------------

def _collect(part: Message, body: _Body, max_bytes: int, top: bool = False) -> None:
    try:
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            _collect_message(part, body, max_bytes, top)
        elif part.is_multipart():
            _collect_multipart(part, body, max_bytes)
        elif ctype.startswith("multipart/"):
            body.warnings.append(f"{ctype} without usable boundary")
            repaired = _repair(part)
            if repaired.is_multipart():
                _collect_multipart(repaired, body, max_bytes)
            else:  # nothing to split on: keep the raw text rather than nothing
                body.plain.append(_text_of(part))
        elif _is_body_text(part):
            (body.html if ctype == "text/html" else body.plain).append(_text_of(part))
        elif ctype not in _REPORT_PARTS:
            body.attachments.append(_attachment(part, len(body.attachments) + 1, max_bytes))
    except Exception as exc:  # noqa: BLE001 - one broken part must not lose the message
        body.warnings.append(f"unreadable part: {type(exc).__name__}: {exc}")


def _repair(part: Message) -> Message:
    """Re-parse a multipart whose boundary parameter is missing or broken (unquoted "=",
    truncated header) using the boundary its body actually uses; else return it as is."""
    if part.is_multipart() or part.get_content_maintype() != "multipart":
        return part
    payload = part.get_payload()
    if not isinstance(payload, str):
        return part
    boundary = _guess_boundary(header(part, "Content-Type") or "", payload)
    if not boundary:
        return part
    lines = []
    for name, value in part.raw_items():
        if name.lower() == "content-type":
            value = re.sub(r";?\s*boundary\s*=\s*(\"[^\"]*\"?|[^;]*)", "", str(value),
                           flags=re.IGNORECASE).rstrip("; \t\r\n")
            value = f'{value}; boundary="{boundary}"'
        lines.append(f"{name}: {value}")
    rebuilt = "\r\n".join(lines) + "\r\n\r\n" + payload
    repaired = email.message_from_bytes(rebuilt.encode("utf-8", "surrogateescape"),
                                        policy=policy.default)
    return repaired if repaired.is_multipart() else part


def _guess_boundary(content_type: str, payload: str) -> str | None:
    declared = re.search(r"boundary\s*=\s*\"?([^\";\r\n]+)", content_type, re.IGNORECASE)
    if declared and f"--{declared.group(1).strip()}" in payload:
        return declared.group(1).strip()
    # The delimiter the body uses most often ("--X" lines, the last one "--X--").
    counts: dict[str, int] = {}
    for m in re.finditer(r"^--([^\s]{6,}?)(--)?[ \t]*\r?$", payload, re.MULTILINE):
        counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    best = max(counts.items(), key=lambda kv: kv[1], default=None)
    return best[0] if best and best[1] >= 2 else None


def _collect_multipart(part: Message, body: _Body, max_bytes: int) -> None:
    children = [c for c in part.get_payload() if isinstance(c, Message)]
    subtype = part.get_content_subtype()
    if subtype == "alternative":
        # Pick one plain and one html rendering (the last of each is the richest, RFC 2046),
        # but keep attachments of every alternative (multipart/related images).
        chosen = _Body()
        for child in children:
            sub = _Body()
            _collect(child, sub, max_bytes)
            chosen.plain = sub.plain or chosen.plain
            chosen.html = sub.html or chosen.html
            chosen.attachments += sub.attachments
            chosen.warnings += sub.warnings
        body.plain += chosen.plain
        body.html += chosen.html
        body.attachments += chosen.attachments
        body.warnings += chosen.warnings
    elif subtype == "report":
        # Only the human-readable first part is body; the rest is machine data (classify()).
        if children:
            _collect(children[0], body, max_bytes)
    else:
        for child in children:
            _collect(child, body, max_bytes)


def _collect_message(part: Message, body: _Body, max_bytes: int, top: bool) -> None:
    inner = part.get_payload()
    inner = inner[0] if isinstance(inner, list) and inner else None
    if top and isinstance(inner, Message):
        _collect(inner, body, max_bytes)  # a whole message forwarded as the body
        return
    body.attachments.append(_attachment(part, len(body.attachments) + 1, max_bytes))


def _is_body_text(part: Message) -> bool:
    if part.get_content_type() not in ("text/plain", "text/html"):
        return False
    disposition = part.get_content_disposition()
    return disposition != "attachment"


def _text_of(part: Message) -> str:
    data = part.get_payload(decode=True)
    if data is None:
        payload = part.get_payload()
        return unescape_surrogates(payload) if isinstance(payload, str) else ""
    return decode_bytes(data, part.get_content_charset())


def _attachment(part: Message, n: int, max_bytes: int) -> InboundAttachment:
    ctype = part.get_content_type()
    data = _attachment_bytes(part)
    cid = header(part, "Content-ID")
    cid = cid.strip().strip("<>").strip() if cid else None
    filename = _filename(part, n, ctype)
    if len(data) > max_bytes:
        return InboundAttachment(filename=filename, content_type=ctype, size=len(data),
                                 content_id=cid, error=f"too large: {len(data)} bytes")
    return InboundAttachment(filename=filename, content_type=ctype, size=len(data), data=data,
                             content_id=cid or None)


def _attachment_bytes(part: Message) -> bytes:
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        if isinstance(inner, list) and inner:
            return inner[0].as_bytes(policy=policy.SMTP.clone(linesep="\r\n"))
    data = part.get_payload(decode=True)
    if data is not None:
        return data
    payload = part.get_payload()
    return payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""


def _filename(part: Message, n: int, ctype: str) -> str:
    try:
        name = part.get_filename()
    except Exception:  # noqa: BLE001 - malformed RFC 2231 parameters
        name = None
    if name:
        name = decode_header_value(name)
        # Never trust a path from the sender.
        name = re.split(r"[\\/]", name)[-1].strip()
    if name:
        return name
    ext = ".eml" if ctype == "message/rfc822" else (mimetypes.guess_extension(ctype) or ".bin")
    return f"attachment-{n}{ext}"
