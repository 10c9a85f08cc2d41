"""Talking to the Graph API (WhatsApp Cloud API) over httpx: send, mark read, media, test.

Every failure leaves here as `TransientError` (retry later) or `PermanentError` (show the
agent), so the outbox never has to know a Graph error code.
"""
from __future__ import annotations

import base64
import hashlib
import os
import threading
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

import httpx

from connectors.base import (
    PHONE,
    Button,
    Outbound,
    OutboundAttachment,
    PermanentError,
    SendResult,
    TransientError,
)

DEFAULT_BASE_URL = "https://graph.facebook.com"
DEFAULT_VERSION = "v21.0"
MAX_TEXT = 4096          # Cloud API limit for text.body
MAX_CAPTION = 1024       # media captions are shorter
WINDOW = timedelta(hours=24)
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
# Graph codes that mean "slow down / try again", per Meta's error-code table.
RATE_LIMIT_CODES = {4, 80007, 130429, 131048, 131056}
# Meta's "temporary" codes: unknown / service unavailable / overloaded / server down.
TEMPORARY_CODES = {1, 2, 131000, 131016, 133004}
WINDOW_CLOSED = 131047


# --- plumbing --------------------------------------------------------------------------------

def _url(settings: Mapping[str, Any], *parts: str) -> str:
    base = (settings.get("api_base_url") or DEFAULT_BASE_URL).rstrip("/")
    version = settings.get("api_version") or DEFAULT_VERSION
    return "/".join([base, version, *parts])


_shared: tuple[int, httpx.Client] | None = None
_shared_lock = threading.Lock()


def _pooled() -> httpx.Client:
    """One connection pool per process: building a client (SSL context) costs ~30 ms, and a
    pool inherited across fork (rq's forking worker) must not be reused by the child."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared[0] != os.getpid():
            _shared = (os.getpid(), httpx.Client(timeout=TIMEOUT, follow_redirects=False))
        return _shared[1]


class _Graph:
    """The shared pool plus this channel's token, which goes on every request."""

    def __init__(self, settings: Mapping[str, Any]):
        self.client = _pooled()
        self.auth = {"Authorization": f"Bearer {settings.get('access_token') or ''}"}

    def __enter__(self) -> "_Graph":
        return self

    def __exit__(self, *exc: object) -> None:
        pass   # the pool outlives one call on purpose

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, url, headers=self.auth, **kwargs)

    def stream(self, method: str, url: str) -> Any:
        return self.client.stream(method, url, headers=self.auth)


def _client(settings: Mapping[str, Any]) -> _Graph:
    return _Graph(settings)


def _graph_error(response: httpx.Response) -> Exception:
    """Map a non-2xx Graph answer to Transient/PermanentError with 'code title: details'."""
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    code = error.get("code")
    title = error.get("error_user_title") or error.get("message") or response.reason_phrase
    details = (error.get("error_data") or {}).get("details") or error.get("error_user_msg")
    text = f"{code if code is not None else response.status_code} {title}"
    if details and details != title:
        text += f": {details}"
    if code == WINDOW_CLOSED:
        return PermanentError(f"WhatsApp 24-hour window closed: {text}; "
                              "only an approved template can be sent now")
    if code in RATE_LIMIT_CODES or response.status_code == 429:
        return TransientError(f"WhatsApp rate limit: {text}", retry_after=_retry_after(response))
    if response.status_code >= 500 or code in TEMPORARY_CODES:
        return TransientError(f"WhatsApp temporarily failed: {text}",
                              retry_after=_retry_after(response))
    return PermanentError(f"WhatsApp refused: {text}")


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def _request(client: _Graph, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
    """One Graph call returning its JSON object; network trouble is always transient."""
    try:
        response = client.request(method, url, **kwargs)
    except httpx.TransportError as exc:
        # A lost answer may mean the message went out; the outbox accepts that risk rather
        # than dropping the reply.
        raise TransientError(f"WhatsApp unreachable: {type(exc).__name__}: {exc}") from exc
    if response.status_code >= 400:
        raise _graph_error(response)
    try:
        data = response.json()
    except ValueError:
        raise PermanentError(f"WhatsApp answered {response.status_code} without JSON") from None
    if not isinstance(data, dict):
        raise PermanentError("WhatsApp answered with unexpected JSON")
    return data


# --- sending ---------------------------------------------------------------------------------

def recipient_fields(handle_kind: str, value: str) -> dict[str, str]:
    """'to' takes phone digits without '+'; a BSUID ("US.1349...") goes in 'recipient'."""
    if handle_kind == PHONE or value.lstrip("+").isdigit():
        return {"to": value.lstrip("+")}
    return {"recipient": value}


def _envelope(outbound: Outbound, with_context: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual",
                            **recipient_fields(outbound.to.kind, outbound.to.value)}
    if with_context and outbound.reply_to_external_id:
        body["context"] = {"message_id": outbound.reply_to_external_id}
    # Echoed back in status webhooks: lets a status be tied to the outbox row even if the
    # send answer was lost (worker killed mid-send).
    body["biz_opaque_callback_data"] = outbound.idempotency_key[:512]
    return body


def template_object(template: Mapping[str, Any]) -> dict[str, Any]:
    name = template.get("name")
    if not name:
        raise PermanentError("WhatsApp template needs a 'name'")
    language = template.get("language") or "en_US"
    if isinstance(language, str):
        language = {"code": language}
    obj: dict[str, Any] = {"name": name, "language": language}
    if template.get("components"):
        obj["components"] = list(template["components"])
    return obj


def _upload(client: _Graph, settings: Mapping[str, Any],
            attachment: OutboundAttachment) -> str:
    """POST /{phone_number_id}/media (multipart) and return the new media id."""
    data = _request(
        client, "POST", _url(settings, str(settings["phone_number_id"]), "media"),
        data={"messaging_product": "whatsapp", "type": attachment.content_type},
        files={"file": (attachment.filename, attachment.data, attachment.content_type)})
    media_id = data.get("id")
    if not media_id:
        raise PermanentError("WhatsApp media upload answered without an id")
    return str(media_id)


def _media_message(media_id: str, attachment: OutboundAttachment, caption: str) -> dict[str, Any]:
    mtype = "image" if attachment.content_type.startswith("image/") else "document"
    obj: dict[str, Any] = {"id": media_id}
    if mtype == "document":
        obj["filename"] = attachment.filename
    if caption:
        obj["caption"] = caption
    return {"type": mtype, mtype: obj}


def _post_message(client: _Graph, settings: Mapping[str, Any],
                  body: dict[str, Any]) -> str:
    data = _request(client, "POST", _url(settings, str(settings["phone_number_id"]), "messages"),
                    json=body)
    try:
        return str(data["messages"][0]["id"])
    except (KeyError, IndexError, TypeError):
        # Probably sent; retrying could duplicate it, so this is not transient.
        raise PermanentError(f"WhatsApp send answered without a message id: {data}") from None


REPLY_BUTTONS = 3        # interactive reply buttons per message
BUTTON_TITLE = 20        # characters of a reply button's title
LIST_ROWS = 10           # rows of an interactive list
ROW_TITLE = 24           # characters of a list row's title
INTERACTIVE_BODY = 1024  # characters of an interactive message's body


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def _interactive(text: str, buttons: tuple[Button, ...]) -> dict[str, Any] | None:
    """Quick replies as WhatsApp interactive reply buttons (up to 3) or a list (up to 10);
    None when they do not fit (the titles then go in the text)."""
    if not text.strip() or len(text) > INTERACTIVE_BODY or len(buttons) > LIST_ROWS:
        return None
    if len(buttons) <= REPLY_BUTTONS:
        action = {"buttons": [{"type": "reply", "reply": {"id": b.id[:256],
                                                          "title": _cut(b.title, BUTTON_TITLE)}}
                              for b in buttons]}
        return {"type": "interactive", "interactive": {
            "type": "button", "body": {"text": text}, "action": action}}
    rows = [{"id": b.id[:200], "title": _cut(b.title, ROW_TITLE)} for b in buttons]
    return {"type": "interactive", "interactive": {
        "type": "list", "body": {"text": text},
        "action": {"button": "☰", "sections": [{"title": "—", "rows": rows}]}}}


def with_button_lines(text: str, buttons: tuple[Button, ...]) -> str:
    """A channel without buttons: their titles as numbered lines under the text."""
    if not buttons:
        return text
    lines = "\n".join(f"{n}. {b.title}" for n, b in enumerate(buttons, 1))
    return f"{text}\n\n{lines}" if text else lines


def _plan(outbound: Outbound) -> list[dict[str, Any] | OutboundAttachment]:
    """The messages one Outbound becomes: template | text | attachments (+ captions)."""
    if outbound.template:
        return [{"type": "template", "template": template_object(outbound.template)}]
    text = outbound.text or ""
    if outbound.buttons and not outbound.attachments:
        interactive = _interactive(text, outbound.buttons)
        if interactive is not None:
            return [interactive]
        text = with_button_lines(text, outbound.buttons)
    if len(text) > MAX_TEXT:
        raise PermanentError(f"WhatsApp text is {len(text)} characters; the limit is {MAX_TEXT}")
    if not outbound.attachments:
        if not text.strip():
            raise PermanentError("nothing to send: empty text and no attachments")
        return [{"type": "text", "text": {"body": text, "preview_url": False}}]
    steps: list[dict[str, Any] | OutboundAttachment] = []
    if text and len(text) > MAX_CAPTION:   # too long to ride on the media as a caption
        steps.append({"type": "text", "text": {"body": text, "preview_url": False}})
    steps.extend(outbound.attachments)
    return steps


def send_outbound(settings: Mapping[str, Any], outbound: Outbound) -> SendResult:
    steps = _plan(outbound)
    text = outbound.text or ""
    caption = text if text and len(text) <= MAX_CAPTION else ""
    ids: list[str] = []
    with _client(settings) as client:
        for step in steps:
            if isinstance(step, OutboundAttachment):
                media_id = _upload(client, settings, step)
                step, caption = _media_message(media_id, step, caption), ""
            body = {**_envelope(outbound, with_context=not ids), **step}
            ids.append(_post_message(client, settings, body))
    return SendResult(external_id=ids[0], extra_ids=tuple(ids[1:]))


# --- other calls -----------------------------------------------------------------------------

def mark_read(settings: Mapping[str, Any], wamid: str) -> None:
    """Blue ticks for the customer: tell WhatsApp the agent has seen `wamid`."""
    body = {"messaging_product": "whatsapp", "status": "read", "message_id": wamid}
    with _client(settings) as client:
        data = _request(client, "POST",
                        _url(settings, str(settings["phone_number_id"]), "messages"), json=body)
    if not data.get("success"):
        raise PermanentError(f"WhatsApp did not confirm read receipt: {data}")


def sha256_matches(data: bytes, expected: str) -> bool:
    """Webhooks carry base64 digests, the media endpoint hex ones: accept either."""
    digest = hashlib.sha256(data).digest()
    candidates = {digest.hex(), base64.b64encode(digest).decode(),
                  base64.urlsafe_b64encode(digest).decode()}
    given = expected.strip()
    return given in candidates or given.lower() in candidates


def download_media(settings: Mapping[str, Any], media_id: str, expected_sha256: str | None,
                   max_bytes: int) -> tuple[bytes, str]:
    """Fetch a media object by id: resolve its URL, download with the token, verify it."""
    with _client(settings) as client:
        info = _request(client, "GET", _url(settings, media_id))
        url, mime = info.get("url"), info.get("mime_type") or "application/octet-stream"
        if not url:
            raise PermanentError(f"WhatsApp media {media_id} has no URL")
        size = info.get("file_size")
        if size is not None and int(size) > max_bytes:
            raise PermanentError(f"WhatsApp media {media_id} is {size} bytes; limit {max_bytes}")
        data = _download(client, url, max_bytes, media_id)
    for digest in (expected_sha256, info.get("sha256")):
        if digest and not sha256_matches(data, digest):
            raise PermanentError(f"WhatsApp media {media_id}: sha256 mismatch")
    if size is not None and len(data) != int(size):
        raise PermanentError(f"WhatsApp media {media_id}: got {len(data)} bytes, "
                             f"expected {size}")
    return data, mime


def _download(client: _Graph, url: str, max_bytes: int, media_id: str) -> bytes:
    """Stream so an oversized file is cut off instead of filling memory."""
    try:
        with client.stream("GET", url) as response:
            if response.status_code >= 400:
                response.read()
                raise _graph_error(response)
            chunks, total = [], 0
            for chunk in response.iter_bytes():
                total += len(chunk)
                if total > max_bytes:
                    raise PermanentError(f"WhatsApp media {media_id} exceeds {max_bytes} bytes")
                chunks.append(chunk)
    except httpx.TransportError as exc:
        raise TransientError(f"WhatsApp media download failed: {exc}") from exc
    return b"".join(chunks)


def describe_number(settings: Mapping[str, Any]) -> str:
    """`threadline channel test`: prove the token reaches this phone number."""
    with _client(settings) as client:
        info = _request(client, "GET", _url(settings, str(settings["phone_number_id"])),
                        params={"fields": "display_phone_number,verified_name,quality_rating"})
    summary = (f"WhatsApp number {info.get('display_phone_number', '?')} "
               f"({info.get('verified_name', 'unverified name')})")
    if info.get("quality_rating"):
        summary += f", quality {info['quality_rating']}"
    return summary


def window_open(last_inbound_at: datetime | None, now: datetime) -> bool:
    """Free-form replies are allowed for 24 hours after the customer's last message."""
    if last_inbound_at is None:
        return False
    if last_inbound_at.tzinfo is None:   # naive means UTC in this codebase's database
        last_inbound_at = last_inbound_at.replace(tzinfo=timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    return now - last_inbound_at < WINDOW
