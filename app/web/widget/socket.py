"""The site chat's Socket.IO namespace `/widget`: one named handler per event (connect,
disconnect, message, prechat, history, typing, receipt, status), registered once per server.

Every socket joins only the rooms of its own token's visitor id (and verified site user id),
so a visitor never receives another visitor's thread. Visitor messages go through
`app.usecases.ingest.receive()` like every other channel; read receipts through
`app.usecases.ingest.apply_status()` (a status only moves forward)."""
from __future__ import annotations

import logging
import uuid
from typing import Any

from flask import request
from flask_socketio import ConnectionRefusedError
from sqlalchemy import select

from connectors.base import StatusUpdate
from connectors.webchat import (
    MAX_TEXT,
    flag,
    normalize_origin,
    origin_allowed,
    prechat_mode,
    verified_user_id,
)

from app.infra.models import Channel, Message, utcnow
from app.infra.state import db
from app.usecases import ingest
from app.web.origins import foreign_origin
from app.web.widget.tokens import read_frame_token, read_visitor_token, visitor_token
from app.web.widget.typing import visitor_typing
from app.web.widget.visitors import (
    IP_CONNECTS,
    IP_MESSAGES,
    NAMESPACE,
    VISITOR_EVENTS,
    VISITOR_MESSAGES,
    Visitor,
    clean_contact,
    clean_page,
    client_ip,
    connected,
    current,
    customer_for,
    disconnected,
    language,
    push_message,
    status_for,
    take_upload,
    thread,
    visitor_view,
)

log = logging.getLogger(__name__)


def _payload_user(visitor: Visitor) -> dict[str, Any]:
    return dict(visitor.user) if visitor.user_id else {
        k: v for k, v in visitor.user.items() if k in ("name", "email", "phone")}


def handle_message(visitor: Visitor, data: dict[str, Any]) -> dict[str, Any]:
    from app.domain.handles import default_region

    text = str(data.get("text") or "")
    if len(text) > MAX_TEXT:
        return {"ok": False, "error": "too_long", "limit": MAX_TEXT}
    text = text.strip()
    client_id = str(data.get("client_id") or uuid.uuid4().hex)[:64]
    files = []
    if data.get("upload"):
        item = take_upload(str(data["upload"]), visitor)
        if item is None:
            return {"ok": False, "error": "bad_upload"}
        files.append(item)
    if not text and not files:
        return {"ok": False, "error": "empty"}
    if not (VISITOR_MESSAGES.take(visitor.visitor_id) and IP_MESSAGES.take(visitor.ip)):
        return {"ok": False, "error": "rate_limited"}
    session = db.session
    channel = session.get(Channel, visitor.channel_id)
    if channel is None or not channel.active:
        return {"ok": False, "error": "channel_closed"}
    external_id = f"{visitor.visitor_id}:{client_id}"
    payload = {"visitor_id": visitor.visitor_id, "message_id": external_id, "text": text,
               "sent_at": utcnow().isoformat(), "user": _payload_user(visitor),
               "prechat": visitor.prechat, "page": visitor.page, "origin": visitor.origin,
               "lang": visitor.lang, "default_region": default_region()}
    if files:
        payload["files"] = files
    button_id = str(data.get("button_id") or "")[:64]
    if button_id:
        payload["button_id"] = button_id
    received = ingest.receive(channel, external_id, payload, process="inline")
    message = session.scalar(select(Message).where(Message.channel_id == channel.id,
                                                   Message.external_id == external_id))
    if message is None:
        # stored raw (an admin sees it failed and can replay it) but not in the thread
        return {"ok": not received.duplicate, "stored": True, "message": None}
    view = visitor_view(message, visitor.visitor_id)
    session.commit()
    push_message(session, message)  # the visitor's other tabs
    return {"ok": True, "message": view, "duplicate": received.duplicate}


def apply_receipts(visitor: Visitor, data: dict[str, Any]) -> int:
    """The widget showed agents' messages: delivered (received) or read (chat open). Each
    is the channel's status report, applied as any channel's is (`ingest.apply_status`):
    only forward (sent < delivered < read), never over a failure."""
    status = "read" if data.get("status") == "read" else "delivered"
    try:
        ids = [int(i) for i in (data.get("ids") or [])][:200]
    except (TypeError, ValueError):
        return 0
    session = db.session
    customer = customer_for(session, visitor)
    if customer is None or not ids:
        return 0
    channel = session.get(Channel, visitor.channel_id)
    changed = 0
    # only messages the visitor can have seen: sent ones (they carry the channel's id)
    for message in list(session.scalars(select(Message).where(
            Message.id.in_(ids), Message.customer_id == customer.id,
            Message.channel_id == visitor.channel_id, Message.direction == "out",
            Message.external_id.is_not(None),
            Message.status.in_(("sent", "delivered", "read"))))):
        before = message.status
        ingest.apply_status(session, channel, StatusUpdate(message.external_id, status, utcnow()))
        changed += message.status != before
    session.commit()
    return changed


# --- the handlers ------------------------------------------------------------------------------

def _connecting_visitor(auth: dict[str, Any]) -> tuple[Channel, Visitor]:
    """Check the frame token, the origin and the site user; the visitor of this socket.
    ConnectionRefusedError (with the reason the widget shows) when refused."""
    parsed = read_frame_token(auth.get("frame"))
    if parsed is None:
        raise ConnectionRefusedError("bad_frame_token")
    public_id, origin = parsed
    channel = db.session.scalar(select(Channel).where(Channel.public_id == public_id))
    if channel is None or channel.kind != "webchat" or not channel.active:
        raise ConnectionRefusedError("unknown_channel")
    own = normalize_origin(request.host_url)
    if not origin_allowed(channel.settings, origin or None, own_origin=own):
        raise ConnectionRefusedError("origin_not_allowed")
    # as for the frame's HTTP calls: only the frame itself (our origin) may connect; a frame
    # token fetched server-side does not let another site host the chat
    if foreign_origin() is not None:
        log.info("widget %s: socket refused for origin %s", channel.id,
                 str(request.headers.get("Origin"))[:200])
        raise ConnectionRefusedError("origin_not_allowed")
    user = auth.get("user") if isinstance(auth.get("user"), dict) else {}
    user_id = None
    if user.get("id"):
        user_id = verified_user_id(channel.settings, user)
        if user_id is None:
            log.warning("widget %s: forged user hash refused", channel.id)
            raise ConnectionRefusedError("invalid_user_hash")
    if flag(channel.settings, "require_verified") and not user_id:
        raise ConnectionRefusedError("verification_required")
    token = read_visitor_token(auth.get("visitor"), public_id)
    if token is None or (token[1] and token[1] != user_id):
        # new browser, bad token, or a different (or logged-out) site user: a fresh
        # visitor, so nobody inherits the thread of the user who was here before
        visitor_id = uuid.uuid4().hex
    else:
        visitor_id = token[0]
    try:
        contact = clean_contact(user) if not user_id else {}
        prechat = clean_contact(auth.get("prechat"))
    except ValueError:
        contact, prechat = {}, {}
    clean_user = {k: str(user[k])[:320] for k in ("id", "name", "email", "phone", "hash")
                  if user.get(k)} if user_id else contact
    return channel, Visitor(channel_id=channel.id, public_id=public_id, visitor_id=visitor_id,
                            origin=origin, ip=client_ip(), user_id=user_id, user=clean_user,
                            prechat=prechat, page=clean_page(auth.get("page")),
                            lang=language(auth.get("lang")))


def on_connect(link, auth=None):
    auth = auth if isinstance(auth, dict) else {}
    if not IP_CONNECTS.take(client_ip()):
        raise ConnectionRefusedError("rate_limited")
    try:
        channel, visitor = _connecting_visitor(auth)
        connected(link.sid, visitor)
        for room in visitor.rooms():
            link.join(room)
        try:
            after = max(0, int(auth.get("after") or 0))
        except (TypeError, ValueError):
            after = 0
        known = customer_for(db.session, visitor) is not None
        link.emit("session", {
            "visitor": visitor_token(visitor.public_id, visitor.visitor_id, visitor.user_id),
            "verified": bool(visitor.user_id),
            "messages": thread(db.session, channel, visitor, after),
            "known": known, "status": status_for(channel),
            "prechat_needed": prechat_mode(channel.settings) != "false" and not visitor.user_id
            and not known and not visitor.prechat,
        })
        return True
    finally:
        db.session.remove()


def on_disconnect(link, *_args):
    disconnected(link.sid)


def on_message(_link, data=None):
    visitor = current()
    if visitor is None:
        return {"ok": False, "error": "not_connected"}
    try:
        return handle_message(visitor, data if isinstance(data, dict) else {})
    except Exception:
        log.exception("widget message failed")
        return {"ok": False, "error": "server_error"}
    finally:
        db.session.remove()


def on_prechat(_link, data=None):
    visitor = current()
    if visitor is None or not VISITOR_EVENTS.take(visitor.visitor_id):
        return {"ok": False, "error": "rate_limited" if visitor else "not_connected"}
    try:
        contact = clean_contact(data)
    except ValueError as exc:
        return {"ok": False, "error": "invalid", "field": str(exc)}
    mode = prechat_mode(db.session.get(Channel, visitor.channel_id).settings)
    db.session.remove()
    if mode == "email" and "email" not in contact:
        return {"ok": False, "error": "invalid", "field": "email"}
    if mode == "phone" and "phone" not in contact:
        return {"ok": False, "error": "invalid", "field": "phone"}
    if mode == "true" and not (contact.get("email") or contact.get("phone")):
        return {"ok": False, "error": "invalid", "field": "email"}
    visitor.prechat = contact
    return {"ok": True}


def on_history(_link, data=None):
    visitor = current()
    if visitor is None or not VISITOR_EVENTS.take(visitor.visitor_id):
        return {"ok": False}
    try:
        after = max(0, int((data or {}).get("after") or 0))
        channel = db.session.get(Channel, visitor.channel_id)
        return {"ok": True, "messages": thread(db.session, channel, visitor, after)}
    except (TypeError, ValueError):
        return {"ok": False}
    finally:
        db.session.remove()


def on_typing(_link, data=None):
    """The visitor types: agents viewing the channel see it (event `widget.typing`)."""
    visitor = current()
    if visitor is None or not VISITOR_EVENTS.take(visitor.visitor_id):
        return {"ok": False}
    try:
        visitor_typing(visitor, bool((data or {}).get("typing")))
        return {"ok": True}
    finally:
        db.session.remove()


def on_receipt(_link, data=None):
    visitor = current()
    if visitor is None or not VISITOR_EVENTS.take(visitor.visitor_id):
        return {"ok": False}
    try:
        return {"ok": True, "changed": apply_receipts(visitor, data or {})}
    finally:
        db.session.remove()


def on_status(_link, _data=None):
    visitor = current()
    if visitor is None or not VISITOR_EVENTS.take(visitor.visitor_id):
        return {"ok": False}
    try:
        return {"ok": True, **status_for(db.session.get(Channel, visitor.channel_id))}
    finally:
        db.session.remove()


def on_answers(_link, data=None):
    """The widget's "search answers" box: the knowledge base's best published articles for
    the visitor's words, in their language (else the language the words are in)."""
    from app.domain import kb

    visitor = current()
    if visitor is None or not VISITOR_EVENTS.take(visitor.visitor_id):
        return {"ok": False, "error": "rate_limited" if visitor else "not_connected"}
    query = str((data or {}).get("q") or "")[:300] if isinstance(data, dict) else ""
    try:
        language = kb.detect_language(query)
        if language is None or (language == "en" and visitor.lang in kb.LANGUAGES):
            language = visitor.lang if visitor.lang in kb.LANGUAGES else None
        hits = kb.search(db.session, query, language, limit=3)
        return {"ok": True, "items": [
            {"id": h.article.id, "title": h.article.title, "summary": kb.summary(h.article),
             "url": kb.help_path(h.article)} for h in hits]}
    finally:
        db.session.remove()


# each a function of (link, data): the socket it serves (app.web.sockets.ThreadLink under
# `threadline serve`, app.web.realtime's under `threadline realtime`) and the event's data
HANDLERS = {"answers": on_answers, "connect": on_connect, "disconnect": on_disconnect,
            "message": on_message, "prechat": on_prechat, "history": on_history,
            "typing": on_typing, "receipt": on_receipt, "status": on_status}


def register_handlers() -> None:
    """Socket.IO handlers live on the one module-level SocketIO; register them once per
    server (create_app builds a new server each time, e.g. in tests)."""
    from app.infra.extensions import socketio

    server = socketio.server
    if server is None or getattr(server, "_threadline_widget", False):
        return
    server._threadline_widget = True
    for event, handler in HANDLERS.items():
        socketio.on(event, namespace=NAMESPACE)(_on_thread(handler))


def _on_thread(handler):
    from app.web.sockets import ThreadLink

    def wrapper(*args):
        return handler(ThreadLink(), *args)
    return wrapper
