"""Is this mail from a machine? Auto-replies, bounces, delay notices, read receipts,
abuse feedback and list mail must never be auto-answered (mail loops) nor reopen tickets.

classify() returns (automated, meta) where meta carries "auto_kind" and, depending on the
kind, "bounced_message_id" / "failed_recipients" (bounce), "original_message_id" (mdn),
"dsn_action" (what a delivery-status report said).
"""
from __future__ import annotations

import email
import re
from email import policy
from email.message import Message
from typing import Any

from .charset import decode_bytes, unescape_surrogates

_AUTO_SUBJECT = re.compile(
    r"^\s*(\[[^\]]*\]\s*)?("
    r"auto(matic)?[ -]?(reply|response|answer)|autoreply|autorespon[sd]|auto:|"
    r"out of (the )?office|abwesenheitsnotiz|automatische antwort|réponse automatique|"
    r"respuesta automática|risposta automatica|"
    r"automatyczna odpowiedź|odpowiedź automatyczna|nieobecność|"
    r"автоответ|автоматический ответ|"
    r"(re:\s*)?vacation reply)",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery status notification \(failure\)|delivery failure|"
    r"delivery has failed|mail delivery failed|returned mail|failure notice|"
    r"delivery notification: delivery has failed|non[- ]?delivery|"
    r"недоставленное сообщение|не доставлено|не может быть доставлено|"
    r"niedostarczon|nie można dostarczyć",
    re.IGNORECASE,
)
_DELAY_SUBJECT = re.compile(
    r"delayed mail|delivery status notification \(delay\)|delivery delayed|"
    r"still being retried|задержка доставки|opóźnion",
    re.IGNORECASE,
)
_DAEMON = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mailerdaemon)@", re.IGNORECASE)
_MSGID_LINE = re.compile(r"^[ \t>]*Message-I[Dd][ \t]*:[ \t]*<?([^<>\s]+@[^<>\s]+?)>?[ \t]*$",
                         re.MULTILINE | re.IGNORECASE)
_FIELD = re.compile(r"^([A-Za-z-]+)[ \t]*:[ \t]*(.*(?:\r?\n[ \t]+.*)*)", re.MULTILINE)


def classify(msg: Message, sender: str, subject: str) -> tuple[bool, dict[str, Any]]:
    report = _report(msg)
    if report is not None:
        return True, report
    kind = _header_kind(msg, sender, subject)
    if kind is None:
        return False, {}
    meta: dict[str, Any] = {"auto_kind": kind}
    if kind == "bounce":
        meta.update(_bounce_details(msg, []))
    return True, meta


def _get(msg: Message, name: str) -> str:
    lname = name.lower()
    for k, v in msg.raw_items():
        if k.lower() == lname:
            return unescape_surrogates(str(v)).strip()
    return ""


def _header_kind(msg: Message, sender: str, subject: str) -> str | None:
    """Kind from headers / sender / subject, strongest evidence first."""
    return_path = _get(msg, "Return-Path")
    null_sender = return_path.replace(" ", "") in ("<>", "")
    null_sender = null_sender and bool(return_path)  # only a *present* empty Return-Path
    daemon = bool(_DAEMON.match(sender)) or _get(msg, "From").rstrip().endswith("<>")
    if _get(msg, "X-Failed-Recipients") or (daemon or null_sender) and _BOUNCE_SUBJECT.search(subject):
        return "bounce"
    if (daemon or null_sender) and _DELAY_SUBJECT.search(subject):
        return "delayed"
    if daemon:
        return "bounce"
    auto_submitted = _get(msg, "Auto-Submitted").lower()
    precedence = _get(msg, "Precedence").lower()
    if (auto_submitted and not auto_submitted.startswith("no")) or _get(msg, "X-Autoreply") \
            or _get(msg, "X-Autorespond") or precedence == "auto_reply" \
            or _AUTO_SUBJECT.search(subject):
        return "auto_reply"
    if _get(msg, "List-Id") or _get(msg, "List-Unsubscribe") \
            or precedence in ("bulk", "junk", "list"):
        return "list"
    if null_sender:
        return "auto_reply"
    return None


def _report(msg: Message) -> dict[str, Any] | None:
    """Kind and details of a multipart/report (RFC 6522), or None."""
    if msg.get_content_type() != "multipart/report":
        nested = [p for p in msg.walk() if p is not msg and p.get_content_type() == "multipart/report"]
        if not nested:
            return None
        msg_report = nested[0]
    else:
        msg_report = msg
    report_type = (msg_report.get_param("report-type") or "").lower()
    parts = list(msg_report.walk())
    types = {p.get_content_type() for p in parts}
    if report_type == "disposition-notification" or "message/disposition-notification" in types:
        return _mdn(msg, parts)
    if report_type == "feedback-report" or "message/feedback-report" in types:
        return {"auto_kind": "feedback", "original_message_id": _enclosed_msgid(parts)}
    blocks = _dsn_blocks(parts)
    actions = [b.get("action", "").lower() for b in blocks if b.get("action")]
    if any(a == "failed" for a in actions) or not actions:
        details = _bounce_details(msg, blocks)
        return {"auto_kind": "bounce", "dsn_action": "failed" if actions else None, **details}
    # Delayed, or a success notice (delivered/relayed/expanded): nothing bounced, so it must
    # not be treated as a failure; "delayed" is the kind for every non-failure DSN.
    return {"auto_kind": "delayed", "dsn_action": actions[0],
            "original_message_id": _enclosed_msgid(parts) or _body_msgid(msg)}


def _mdn(msg: Message, parts: list[Message]) -> dict[str, Any]:
    fields = {}
    for p in parts:
        if p.get_content_type() == "message/disposition-notification":
            for block in _part_blocks(p):
                fields.update(block)
    original = (fields.get("original-message-id", "").strip().strip("<>")
                or _enclosed_msgid(parts))
    if not original:
        refs = re.findall(r"<([^<>\s]+)>", _get(msg, "In-Reply-To") + " " + _get(msg, "References"))
        original = refs[-1] if refs else None
    return {"auto_kind": "mdn", "original_message_id": original or None,
            "disposition": fields.get("disposition", "").strip() or None}


def _bounce_details(msg: Message, blocks: list[dict[str, str]]) -> dict[str, Any]:
    parts = list(msg.walk())
    failed: list[str] = []
    for value in _get(msg, "X-Failed-Recipients").split(","):
        if value.strip():
            failed.append(value.strip().lower())
    for block in blocks:
        if block.get("action", "failed").lower() == "failed" and block.get("final-recipient"):
            addr = block["final-recipient"].rpartition(";")[2].strip().strip("<>").lower()
            if addr:
                failed.append(addr)
    if not failed:
        failed = _body_failed_recipients(parts)
    return {
        "bounced_message_id": _enclosed_msgid(parts) or _body_msgid(msg),
        "failed_recipients": list(dict.fromkeys(failed)),
    }


_FAILED_INTRO = re.compile(
    r"(delivery has failed to these recipients|delivery to the following recipients? failed|"
    r"following (recipients?|address(es)?) (failed|could not be reached)|"
    r"could not be delivered to one or more|addresses had permanent fatal errors|"
    r"не удалось доставить|не может быть доставлено)", re.IGNORECASE)
_ADDRESS = re.compile(r"[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


def _body_failed_recipients(parts: list[Message]) -> list[str]:
    """Exchange / Office 365 NDRs without X-Failed-Recipients or a DSN part name the
    recipients in prose, right after a fixed sentence."""
    for p in parts:
        if p.get_content_type() != "text/plain":
            continue
        text = decode_bytes(p.get_payload(decode=True) or b"", p.get_content_charset())
        m = _FAILED_INTRO.search(text)
        if m:
            lines = [ln for ln in text[m.end():].splitlines()[1:8] if ln.strip()][:3]
            return [a.lower() for ln in lines for a in _ADDRESS.findall(ln)][:20]
    return []


def _dsn_blocks(parts: list[Message]) -> list[dict[str, str]]:
    blocks: list[dict[str, str]] = []
    for p in parts:
        if p.get_content_type() in ("message/delivery-status", "message/global-delivery-status"):
            blocks += _part_blocks(p)
    return blocks


def _part_blocks(part: Message) -> list[dict[str, str]]:
    """Field blocks of a delivery-status / disposition-notification part, lowercased keys."""
    payload = part.get_payload()
    if isinstance(payload, list):
        texts = ["".join(f"{k}: {v}\n" for k, v in m.raw_items()) for m in payload
                 if isinstance(m, Message)]
    else:
        data = part.get_payload(decode=True) or b""
        texts = re.split(r"\r?\n[ \t]*\r?\n", decode_bytes(data))
    blocks = []
    for text in texts:
        fields = {m.group(1).lower(): re.sub(r"\s+", " ", m.group(2)).strip()
                  for m in _FIELD.finditer(text)}
        if fields:
            blocks.append(fields)
    return blocks


def _enclosed_msgid(parts: list[Message]) -> str | None:
    """Message-ID of the returned message: an attached message/rfc822 or its headers."""
    for p in parts:
        ctype = p.get_content_type()
        if ctype in ("message/rfc822", "message/global"):
            inner = p.get_payload()
            if isinstance(inner, list) and inner and _get(inner[0], "Message-ID"):
                return _strip_id(_get(inner[0], "Message-ID"))
        elif ctype in ("text/rfc822-headers", "message/rfc822-headers", "message/global-headers"):
            inner = _headers_part(p)
            if inner is not None and _get(inner, "Message-ID"):
                return _strip_id(_get(inner, "Message-ID"))
    return None


def _headers_part(part: Message) -> Message | None:
    payload = part.get_payload()
    if isinstance(payload, list):
        return payload[0] if payload and isinstance(payload[0], Message) else None
    data = part.get_payload(decode=True) or b""
    return email.message_from_bytes(data, policy=policy.default)


def _body_msgid(msg: Message) -> str | None:
    """Last resort for text-only bounces (Gmail, mail.ru): the original's headers are quoted
    in the body, so the first Message-ID line there is the returned message's."""
    for p in msg.walk():
        if p.get_content_maintype() != "text":
            continue
        data = p.get_payload(decode=True)
        if not data:
            continue
        m = _MSGID_LINE.search(decode_bytes(data, p.get_content_charset()))
        if m:
            return m.group(1)
    return None


def _strip_id(value: str) -> str:
    m = re.search(r"<([^<>\s]+)>", value)
    return m.group(1) if m else value.strip()
