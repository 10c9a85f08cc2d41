"""Who is on the site chat: the visitors connected to this process (one per socket), the rate
limits of what they send, the customer their tokens prove, their thread as they see it, and
the push of agents' replies to their open widgets (`outbox.SENT_HOOKS["webchat"]`)."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import request
from sqlalchemy import select
from sqlalchemy.orm import object_session

from connectors.webchat import within_business_hours

from app.domain.customers import canonical
from app.infra.extensions import socketio
from app.infra.models import Agent, Channel, Customer, Identity, Message
from app.web.widget.tokens import file_url, read_upload_token

log = logging.getLogger(__name__)
NAMESPACE = "/widget"
HISTORY_LIMIT = 200
LANGUAGES = ("en", "ru", "pl")


# --- rate limits for socket messages -------------------------------------------------------

class TokenBucket:
    """A simple per-key token bucket (per process): `capacity` at once, refilled at `rate`
    tokens a second."""

    def __init__(self, capacity: float, rate: float):
        self.capacity, self.rate = float(capacity), float(rate)
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            allowed = tokens >= 1
            self._buckets[key] = (tokens - 1 if allowed else tokens, now)
            if len(self._buckets) > 50000:  # forget full buckets of idle keys
                for k, (t, at) in list(self._buckets.items()):
                    if t + (now - at) * self.rate >= self.capacity:
                        del self._buckets[k]
            return allowed


VISITOR_MESSAGES = TokenBucket(capacity=8, rate=0.5)     # a burst of 8, then one per 2 s
IP_MESSAGES = TokenBucket(capacity=40, rate=2)            # many visitors behind one NAT
IP_CONNECTS = TokenBucket(capacity=30, rate=0.5)
VISITOR_EVENTS = TokenBucket(capacity=30, rate=5)        # typing, receipts, history


def client_ip() -> str:
    return request.remote_addr or "?"


# --- visitors --------------------------------------------------------------------------------

@dataclass
class Visitor:
    channel_id: int
    public_id: str
    visitor_id: str
    origin: str
    ip: str
    user_id: str | None = None
    user: dict[str, Any] = field(default_factory=dict)
    prechat: dict[str, Any] = field(default_factory=dict)
    page: dict[str, Any] = field(default_factory=dict)
    lang: str = "en"

    def rooms(self) -> list[str]:
        rooms = [visitor_room(self.channel_id, self.visitor_id)]
        if self.user_id:
            rooms.append(user_room(self.channel_id, self.user_id))
        return rooms


# socket id -> its visitor, for the sockets connected to this process
_visitors: dict[str, Visitor] = {}
_visitors_lock = threading.Lock()


def connected(sid: str, visitor: Visitor) -> None:
    with _visitors_lock:
        _visitors[sid] = visitor


def disconnected(sid: str) -> None:
    with _visitors_lock:
        _visitors.pop(sid, None)


def current() -> Visitor | None:
    """The visitor of the socket this event came from."""
    with _visitors_lock:
        return _visitors.get(request.sid)


def visitor_room(channel_id: int, visitor_id: str) -> str:
    return f"widget:{channel_id}:v:{visitor_id}"


def user_room(channel_id: int, user_id: str) -> str:
    return f"widget:{channel_id}:u:{user_id}"


def clean_contact(data: Any) -> dict[str, str]:
    data = data if isinstance(data, dict) else {}
    out = {}
    for key, limit in (("name", 200), ("email", 320), ("phone", 40)):
        value = str(data.get(key) or "").strip()[:limit]
        if value:
            out[key] = value
    if "email" in out and ("@" not in out["email"] or " " in out["email"]):
        raise ValueError("email")
    if "phone" in out and sum(ch.isdigit() for ch in out["phone"]) < 5:
        raise ValueError("phone")
    return out


def clean_page(data: Any) -> dict[str, str]:
    data = data if isinstance(data, dict) else {}
    return {k: str(data[k])[:2000] for k in ("url", "referrer", "title", "lang") if data.get(k)}


def language(value: Any) -> str:
    value = str(value or "").lower()[:2]
    return value if value in LANGUAGES else "en"


def customer_for(session, visitor: Visitor) -> Customer | None:
    """The customer whose identities this visitor's tokens prove: the verified site user
    first, else the visitor id."""
    handles = ([("site_user", visitor.user_id)] if visitor.user_id else []) + \
        [("webchat", visitor.visitor_id)]
    for kind, value in handles:
        identity = session.scalar(select(Identity).where(Identity.kind == kind,
                                                         Identity.value == value))
        if identity is not None:
            return canonical(session, identity.customer)
    return None


def visitor_view(message: Message, visitor_id: str, names: dict[int, str] | None = None) -> dict[str, Any]:
    """A message as the visitor sees it: no internal fields, never a note."""
    author = None
    if message.direction == "out" and message.author_id:
        if names is not None and message.author_id in names:
            author = names[message.author_id]
        else:
            agent = object_session(message).get(Agent, message.author_id)
            author = (agent.name or "").split()[0] if agent and agent.name else None
    client_id = None
    if message.direction == "in" and message.external_id and ":" in message.external_id:
        client_id = message.external_id.split(":", 1)[1]
    buttons = [{"id": str(b.get("id")), "title": str(b.get("title"))}
               for b in (message.meta or {}).get("buttons") or [] if isinstance(b, dict)] \
        if message.direction == "out" else []
    # a feedback question (app.usecases.csat): the widget draws five stars instead of buttons
    csat = bool(message.direction == "out" and isinstance(message.meta, dict)
                and message.meta.get("csat") and buttons)
    return {
        "id": message.id, "direction": message.direction, "text": message.text or "",
        "created_at": message.created_at.isoformat(), "status": message.status,
        "csat": csat,
        "author": author, "client_id": client_id, "buttons": [] if csat else buttons,
        "bot": bool((message.meta or {}).get("bot")) if message.direction == "out" else False,
        "attachments": [{"name": a.filename, "type": a.content_type, "size": a.size,
                         "error": a.error,
                         "url": file_url(a.id, visitor_id) if a.path else None}
                        for a in message.attachments],
    }


def thread(session, channel: Channel, visitor: Visitor, after: int = 0) -> list[dict[str, Any]]:
    customer = customer_for(session, visitor)
    if customer is None:
        return []
    query = (select(Message).where(Message.customer_id == customer.id,
                                   Message.channel_id == channel.id,
                                   Message.direction.in_(("in", "out")),
                                   Message.deleted.is_(False), Message.id > after)
             .order_by(Message.id.desc()).limit(HISTORY_LIMIT))
    messages = list(reversed(session.scalars(query).all()))
    author_ids = {m.author_id for m in messages if m.author_id}
    names = {a.id: (a.name or "").split()[0] if a.name else None for a in session.scalars(
        select(Agent).where(Agent.id.in_(author_ids or [-1])))}
    return [visitor_view(m, visitor.visitor_id, names) for m in messages
            if m.direction == "in" or m.status in ("sent", "delivered", "read")]


def identity_rooms(session, customer_id: int, channel_id: int) -> list[str]:
    rows = session.execute(select(Identity.kind, Identity.value).where(
        Identity.customer_id == customer_id, Identity.kind.in_(("webchat", "site_user"))))
    return [visitor_room(channel_id, value) if kind == "webchat" else user_room(channel_id, value)
            for kind, value in rows]


def push_message(session, message: Message) -> int:
    """Emit a message to every open widget of its customer on its channel; returns the
    number of rooms it went to. Each room gets the message with file links signed for it."""
    if socketio.server is None:
        return 0
    rooms = identity_rooms(session, message.customer_id, message.channel_id)
    for room in rooms:
        visitor_id = room.split(":", 3)[3]
        socketio.emit("thread.message", visitor_view(message, visitor_id), namespace=NAMESPACE, to=room)
    return len(rooms)


def agents_online(channel_id: int) -> bool:
    """Is an agent who can answer this channel connected (to this web process)?"""
    from app.infra.events import ADMINS_ROOM
    from app.infra.events import NAMESPACE as AGENTS
    from app.infra.events import channel_room

    server = socketio.server
    if server is None:
        return False
    try:
        for room in (ADMINS_ROOM, channel_room(channel_id)):
            if any(True for _ in server.manager.get_participants(AGENTS, room)):
                return True
    except (KeyError, AttributeError):
        return False
    return False


def status_for(channel: Channel) -> dict[str, Any]:
    open_now = within_business_hours(channel.settings)
    online = agents_online(channel.id)
    return {"agents_online": online, "business_hours": open_now,
            "away": not (online and open_now),
            "away_message": str(channel.settings.get("away_message") or "")[:1000] or None}


# --- SENT hook: agents' replies reach the visitor ------------------------------------------

def on_reply_sent(message_id: int) -> None:
    from app.infra.state import db

    # runs inside the send's after-commit callback: that session is done, use a new one
    with db.session_factory() as session:
        message = session.get(Message, message_id)
        if message is None or message.direction != "out":
            return
        reached = push_message(session, message)
        # a visitor who is gone gets it by email later: app/widget_email.py (with the sweep)
        log.debug("webchat reply %s pushed to %s widget room(s)", message_id, reached)



# --- files a visitor uploaded for their next message ------------------------------------------

def take_upload(token: str, visitor: Visitor) -> dict[str, Any] | None:
    """The file an upload token names, once (it is removed), if it is this visitor's."""
    import base64

    data = read_upload_token(token)
    if data is None:
        return None
    if data.get("v") != visitor.visitor_id or data.get("c") != visitor.public_id:
        return None
    from app.web.widget.uploads import visitor_uploads_dir

    path = visitor_uploads_dir(visitor.visitor_id) / str(data["f"])
    if not path.is_file():
        return None
    content = path.read_bytes()
    path.unlink(missing_ok=True)
    return {"name": data["n"], "type": data["t"], "data": base64.b64encode(content).decode()}
