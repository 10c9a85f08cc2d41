"""The site chat widget: `/widget.js`, the widget iframe, its HTTP endpoints and the
Socket.IO namespace `/widget`.

How a visitor is tied to a thread (docs/widget.md has the whole story):

- `/widget.js` (on the customer's site) opens an iframe at `/widget/frame?c=<public id>`,
  served from Threadline's own origin, so the widget's CSS and scripts are isolated and its
  Socket.IO connection is same-origin. The frame request's Origin/Referer must be one of the
  channel's `allowed_origins`; the frame page then carries a *frame token* (itsdangerous,
  signed with the app secret) naming the channel and the embedding origin, and the browser
  enforces the same list with `Content-Security-Policy: frame-ancestors`.
- On connect the frame presents the frame token and its *visitor token* (kept in
  localStorage; signed {channel, visitor id, bound site user}). No or a bad visitor token
  gets a fresh visitor id. Every socket joins only the rooms of its own token's visitor id
  (and verified site user id), so a visitor never receives another visitor's thread, and
  history is read only for the customer that owns those identities.
- `window.Threadline.user` with `hash` = HMAC-SHA256(widget secret, id) makes the id a
  verified identity; a wrong hash is refused; `require_verified` refuses anonymous visitors.
- Visitor messages go through `app.usecases.ingest.receive()` like every other channel; agents'
  replies reach the visitor through `outbox.SENT_HOOKS["webchat"]`.
"""
from __future__ import annotations

import base64
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    render_template,
    request,
    send_file,
)
from flask_socketio import ConnectionRefusedError, join_room
from itsdangerous import BadSignature, URLSafeSerializer, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import object_session

from app.web.origins import foreign_origin
from connectors.webchat import (
    MAX_TEXT,
    allowed_origins,
    flag,
    max_file_bytes,
    normalize_origin,
    origin_allowed,
    prechat_mode,
    verified_user_id,
    within_business_hours,
)

from app.domain.customers import canonical
from app.infra.extensions import limiter, socketio
from app.infra.models import Agent, Attachment, Channel, Customer, Identity, Message, utcnow
from app.web.auth import admin_required

log = logging.getLogger(__name__)
bp = Blueprint("widget", __name__)
NAMESPACE = "/widget"
STATIC = Path(__file__).resolve().parents[2] / "static"
FRAME_MAX_AGE = 7 * 24 * 3600
HISTORY_LIMIT = 200
LANGUAGES = ("en", "ru", "pl")


# --- signed tokens -------------------------------------------------------------------------

def _timed(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt)


def _plain(salt: str) -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=salt)


def frame_token(channel: Channel, origin: str | None) -> str:
    return _timed("threadline.widget.frame").dumps({"c": channel.public_id, "o": origin or ""})


def read_frame_token(token: Any) -> tuple[str, str] | None:
    try:
        data = _timed("threadline.widget.frame").loads(str(token or ""), max_age=FRAME_MAX_AGE)
        return str(data["c"]), str(data["o"])
    except (BadSignature, KeyError, TypeError):
        return None


def visitor_token(public_id: str, visitor_id: str, user_id: str | None = None) -> str:
    return _plain("threadline.widget.visitor").dumps({"c": public_id, "v": visitor_id,
                                                       "u": user_id or ""})


def read_visitor_token(token: Any, public_id: str) -> tuple[str, str | None] | None:
    try:
        data = _plain("threadline.widget.visitor").loads(str(token or ""))
    except (BadSignature, TypeError):
        return None
    if not isinstance(data, dict) or data.get("c") != public_id or not data.get("v"):
        return None
    return str(data["v"]), (str(data["u"]) if data.get("u") else None)


def file_url(attachment_id: int, visitor_id: str) -> str:
    token = _plain("threadline.widget.file").dumps({"a": attachment_id, "v": visitor_id})
    return f"/widget/file/{token}"  # same origin as the frame; also built in jobs


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


def _client_ip() -> str:
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


_visitors: dict[str, Visitor] = {}
_visitors_lock = threading.Lock()


def visitor_room(channel_id: int, visitor_id: str) -> str:
    return f"widget:{channel_id}:v:{visitor_id}"


def user_room(channel_id: int, user_id: str) -> str:
    return f"widget:{channel_id}:u:{user_id}"


def _clean_contact(data: Any) -> dict[str, str]:
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


def _clean_page(data: Any) -> dict[str, str]:
    data = data if isinstance(data, dict) else {}
    return {k: str(data[k])[:2000] for k in ("url", "referrer", "title", "lang") if data.get(k)}


def _lang(value: Any) -> str:
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
    return {
        "id": message.id, "direction": message.direction, "text": message.text or "",
        "created_at": message.created_at.isoformat(), "status": message.status,
        "author": author, "client_id": client_id,
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



# --- HTTP ----------------------------------------------------------------------------------

def _channel_by_public_id(public_id: str | None) -> Channel:
    from app.infra.state import db

    if not public_id:
        abort(404)
    channel = db.session.scalar(select(Channel).where(Channel.public_id == str(public_id)[:40]))
    if channel is None or channel.kind != "webchat" or not channel.active:
        abort(404)
    return channel


def _own_origin() -> str:
    return normalize_origin(request.host_url) or ""


def _request_origin() -> str | None:
    return normalize_origin(request.headers.get("Origin")) or \
        normalize_origin(request.headers.get("Referer"))


def _frame_ancestors(channel: Channel) -> str:
    listed = allowed_origins(channel.settings)
    if not listed:
        return "*"
    return " ".join(["'self'", *listed])


@bp.get("/widget.js")
@limiter.limit("300/minute")
def loader():
    response = send_file(STATIC / "widget.js", mimetype="application/javascript",
                         max_age=300)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Access-Control-Allow-Origin"] = "*"  # a public script
    return response


@bp.get("/widget/frame")
@limiter.limit("120/minute")
def frame():
    """The widget's iframe. Refused (403) unless the embedding page's origin is allowed."""
    channel = _channel_by_public_id(request.args.get("c"))
    embedder = _request_origin()
    if not origin_allowed(channel.settings, embedder, own_origin=_own_origin()):
        log.info("widget %s: frame refused for origin %s", channel.id, embedder)
        response = Response(render_template("widget_refused.html"), status=403)
        response.headers["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'none'"
        return response
    config = {
        "channel": channel.public_id, "frame": frame_token(channel, embedder),
        "parent_origin": embedder or "", "prechat": prechat_mode(channel.settings),
        "max_file_bytes": max_file_bytes(channel.settings), "max_text": MAX_TEXT,
        "require_verified": flag(channel.settings, "require_verified"),
        "lang": _lang(request.args.get("lang")),
        "socket_path": "/socket.io", "namespace": NAMESPACE,
    }
    response = Response(render_template("widget_frame.html", config=config, lang=config["lang"]))
    host = request.host
    response.headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        f"connect-src 'self' ws://{host} wss://{host}; object-src 'none'; base-uri 'none'; "
        f"form-action 'none'; frame-ancestors {_frame_ancestors(channel)}")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _http_visitor() -> tuple[Channel, str]:
    """Frame token + visitor token of an HTTP call from the frame, with the origin check."""
    parsed = read_frame_token(request.headers.get("X-Threadline-Frame"))
    if parsed is None:
        abort(403, "bad frame token")
    public_id, origin = parsed
    channel = _channel_by_public_id(public_id)
    if not origin_allowed(channel.settings, origin or None, own_origin=_own_origin()):
        abort(403, "origin not allowed")
    if foreign_origin() is not None:  # only the frame itself (same origin) may call
        abort(403, "cross-origin call")
    visitor = read_visitor_token(request.headers.get("X-Threadline-Visitor"), public_id)
    if visitor is None:
        abort(403, "bad visitor token")
    return channel, visitor[0]


def _visitor_key() -> str:
    visitor = read_visitor_token(request.headers.get("X-Threadline-Visitor"),
                                 (read_frame_token(request.headers.get("X-Threadline-Frame"))
                                  or ("", ""))[0])
    return f"visitor:{visitor[0]}" if visitor else f"ip:{_client_ip()}"


def _uploads_dir() -> Path:
    from app.infra.state import config

    path = Path(config["data_dir"]) / "widget-uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _visitor_uploads_dir(visitor_id: str) -> Path:
    """Each visitor's waiting uploads in a folder of their own (named by a hash of the
    visitor id), so they can be counted against the per-visitor cap."""
    import hashlib

    return _uploads_dir() / hashlib.sha256(str(visitor_id).encode()).hexdigest()[:32]


def _upload_ttl() -> float:
    from app.infra.state import config

    return float(config["storage"]["widget_upload_ttl"])


_last_expiry = 0.0
EXPIRY_EVERY = 60.0  # seconds between the upload route's own expiry passes


def expire_uploads() -> int:
    """Delete site-chat uploads older than `storage.widget_upload_ttl` that no message took
    (a sent upload is moved into attachment storage at once; its token dies with the same
    age). Run by the sweep job, and by the upload route at most once a minute (the web
    process that stores the files may run no sweeper). Returns how many files it deleted."""
    global _last_expiry
    _last_expiry = time.time()
    root = _uploads_dir()
    cutoff = time.time() - _upload_ttl()
    removed = 0
    for path in list(root.rglob("*")):
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except OSError:  # taken by its message meanwhile
            continue
    for folder in root.iterdir():
        try:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        except OSError:
            continue
    if removed:
        log.info("deleted %s site-chat uploads never sent", removed)
    return removed


def _waiting_uploads(folder: Path) -> tuple[int, int]:
    count = size = 0
    if folder.is_dir():
        for path in folder.iterdir():
            try:
                size += path.stat().st_size
                count += 1
            except OSError:
                continue
    return count, size


@bp.post("/widget/upload")
@limiter.limit("30/minute")
@limiter.limit("10/minute", key_func=_visitor_key)
def upload():
    """Store one file for the visitor's next message; answers an upload token."""
    channel, visitor_id = _http_visitor()
    limit = max_file_bytes(channel.settings)
    if request.content_length and request.content_length > limit + 64 * 1024:
        return jsonify(error="too_large", limit=limit), 413
    item = request.files.get("file")
    if item is None or not item.filename:
        return jsonify(error="no file"), 400
    data = item.stream.read(limit + 1)
    if len(data) > limit:
        return jsonify(error="too_large", limit=limit), 413
    if not data:
        return jsonify(error="empty file"), 400
    if time.time() - _last_expiry > EXPIRY_EVERY:
        expire_uploads()
    from app.infra.state import config

    storage = config["storage"]
    folder = _visitor_uploads_dir(visitor_id)
    count, size = _waiting_uploads(folder)
    if count >= int(storage["widget_upload_max_files"]) \
            or size + len(data) > int(storage["widget_upload_max_bytes"]):
        return jsonify(error="too_many_uploads", files=int(storage["widget_upload_max_files"]),
                       bytes=int(storage["widget_upload_max_bytes"])), 429
    upload_id = uuid.uuid4().hex
    folder.mkdir(parents=True, exist_ok=True)
    (folder / upload_id).write_bytes(data)
    token = _timed("threadline.widget.upload").dumps({
        "f": upload_id, "v": visitor_id, "c": channel.public_id,
        "n": Path(item.filename).name[:200],
        "t": (item.mimetype or "application/octet-stream")[:120], "s": len(data)})
    return jsonify(upload=token, name=Path(item.filename).name[:200], size=len(data))


def _take_upload(token: str, visitor: Visitor) -> dict[str, Any] | None:
    try:
        data = _timed("threadline.widget.upload").loads(str(token), max_age=_upload_ttl())
    except BadSignature:
        return None
    if data.get("v") != visitor.visitor_id or data.get("c") != visitor.public_id:
        return None
    path = _visitor_uploads_dir(visitor.visitor_id) / str(data["f"])
    if not path.is_file():
        return None
    content = path.read_bytes()
    path.unlink(missing_ok=True)
    return {"name": data["n"], "type": data["t"], "data": base64.b64encode(content).decode()}


@bp.get("/widget/file/<token>")
@limiter.limit("120/minute")
def file(token: str):
    from app.infra.state import db
    from app.infra.storage import attachment_path

    try:
        data = _plain("threadline.widget.file").loads(token)
    except BadSignature:
        abort(404)
    attachment = db.session.get(Attachment, int(data.get("a") or 0))
    if attachment is None or not attachment.path:
        abort(404)
    image = attachment.content_type.startswith("image/") and attachment.content_type != "image/svg+xml"
    response = send_file(attachment_path(attachment.path),
                         mimetype=attachment.content_type if image else "application/octet-stream",
                         as_attachment=not image, download_name=attachment.filename)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


@bp.get("/widget/demo")
@admin_required
def demo():
    """A sample shop page with the widget, for admins to try a webchat channel."""
    from app.infra.state import db

    channels = list(db.session.scalars(select(Channel).where(Channel.kind == "webchat",
                                                             Channel.active.is_(True))
                                       .order_by(Channel.id)))
    wanted = request.args.get("channel")
    channel = next((c for c in channels if wanted in (str(c.id), c.public_id)), None) \
        if wanted else (channels[0] if channels else None)
    return render_template("widget_demo.html", channel=channel, channels=channels,
                           lang=_lang(request.args.get("lang") or "en"))


# --- Socket.IO -----------------------------------------------------------------------------

def _current() -> Visitor | None:
    with _visitors_lock:
        return _visitors.get(request.sid)


def _payload_user(visitor: Visitor) -> dict[str, Any]:
    return dict(visitor.user) if visitor.user_id else {
        k: v for k, v in visitor.user.items() if k in ("name", "email", "phone")}


def handle_message(visitor: Visitor, data: dict[str, Any]) -> dict[str, Any]:
    from app.domain.handles import default_region
    from app.usecases.ingest import receive
    from app.infra.state import db

    text = str(data.get("text") or "")
    if len(text) > MAX_TEXT:
        return {"ok": False, "error": "too_long", "limit": MAX_TEXT}
    text = text.strip()
    client_id = str(data.get("client_id") or uuid.uuid4().hex)[:64]
    files = []
    if data.get("upload"):
        item = _take_upload(str(data["upload"]), visitor)
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
    received = receive(channel, external_id, payload, process="inline")
    message = session.scalar(select(Message).where(Message.channel_id == channel.id,
                                                   Message.external_id == external_id))
    if message is None:
        # stored raw (an admin sees it failed and can replay it) but not in the thread
        return {"ok": not received.duplicate, "stored": True, "message": None}
    view = visitor_view(message, visitor.visitor_id)
    session.commit()
    push_message(session, message)  # the visitor's other tabs
    return {"ok": True, "message": view, "duplicate": received.duplicate}


def _apply_receipts(visitor: Visitor, data: dict[str, Any]) -> int:
    """The widget showed agents' messages: delivered (received) or read (chat open)."""
    from app.infra.schemas import message_schema
    from app.usecases.ingest import STATUS_RANK
    from app.infra.events import record_event
    from app.infra.state import db

    status = "read" if data.get("status") == "read" else "delivered"
    try:
        ids = [int(i) for i in (data.get("ids") or [])][:200]
    except (TypeError, ValueError):
        return 0
    session = db.session
    customer = customer_for(session, visitor)
    if customer is None or not ids:
        return 0
    changed = 0
    for message in session.scalars(select(Message).where(
            Message.id.in_(ids), Message.customer_id == customer.id,
            Message.channel_id == visitor.channel_id, Message.direction == "out")):
        if STATUS_RANK.get(message.status, 99) < STATUS_RANK[status] and message.status != "failed" \
                and STATUS_RANK.get(message.status, 99) >= STATUS_RANK["sent"]:
            message.status = status
            session.flush()
            record_event(session, "message.updated", message_schema.dump(message),
                         visitor.channel_id)
            changed += 1
    session.commit()
    return changed


@bp.record
def _on_register(_state) -> None:
    register_handlers()


def register_handlers() -> None:
    """Socket.IO handlers live on the one module-level SocketIO; register them once per
    server (create_app builds a new server each time, e.g. in tests)."""
    server = socketio.server
    if server is None or getattr(server, "_threadline_widget", False):
        return
    server._threadline_widget = True
    from app.infra.events import ADMINS_ROOM, channel_room
    from app.infra.events import NAMESPACE as AGENTS
    from app.infra.state import db

    @socketio.on("connect", namespace=NAMESPACE)
    def on_connect(auth=None):
        auth = auth if isinstance(auth, dict) else {}
        if not IP_CONNECTS.take(_client_ip()):
            raise ConnectionRefusedError("rate_limited")
        parsed = read_frame_token(auth.get("frame"))
        if parsed is None:
            raise ConnectionRefusedError("bad_frame_token")
        public_id, origin = parsed
        try:
            channel = db.session.scalar(select(Channel).where(Channel.public_id == public_id))
            if channel is None or channel.kind != "webchat" or not channel.active:
                raise ConnectionRefusedError("unknown_channel")
            own = normalize_origin(request.host_url)
            if not origin_allowed(channel.settings, origin or None, own_origin=own):
                raise ConnectionRefusedError("origin_not_allowed")
            # as for the frame's HTTP calls: only the frame itself (our origin) may connect;
            # a frame token fetched server-side does not let another site host the chat
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
                contact = _clean_contact(user) if not user_id else {}
                prechat = _clean_contact(auth.get("prechat"))
            except ValueError:
                contact, prechat = {}, {}
            clean_user = {k: str(user[k])[:320] for k in ("id", "name", "email", "phone", "hash")
                          if user.get(k)} if user_id else contact
            visitor = Visitor(channel_id=channel.id, public_id=public_id, visitor_id=visitor_id,
                              origin=origin, ip=_client_ip(), user_id=user_id, user=clean_user,
                              prechat=prechat, page=_clean_page(auth.get("page")),
                              lang=_lang(auth.get("lang")))
            with _visitors_lock:
                _visitors[request.sid] = visitor
            for room in visitor.rooms():
                join_room(room)
            try:
                after = max(0, int(auth.get("after") or 0))
            except (TypeError, ValueError):
                after = 0
            known = customer_for(db.session, visitor) is not None
            socketio.emit("session", {
                "visitor": visitor_token(public_id, visitor_id, user_id),
                "verified": bool(user_id), "messages": thread(db.session, channel, visitor, after),
                "known": known, "status": status_for(channel),
                "prechat_needed": prechat_mode(channel.settings) != "false" and not user_id
                and not known and not prechat,
            }, namespace=NAMESPACE, to=request.sid)
            return True
        finally:
            db.session.remove()

    @socketio.on("disconnect", namespace=NAMESPACE)
    def on_disconnect(*_args):
        with _visitors_lock:
            _visitors.pop(request.sid, None)

    @socketio.on("message", namespace=NAMESPACE)
    def on_message(data=None):
        visitor = _current()
        if visitor is None:
            return {"ok": False, "error": "not_connected"}
        try:
            return handle_message(visitor, data if isinstance(data, dict) else {})
        except Exception:
            log.exception("widget message failed")
            return {"ok": False, "error": "server_error"}
        finally:
            db.session.remove()

    @socketio.on("prechat", namespace=NAMESPACE)
    def on_prechat(data=None):
        visitor = _current()
        if visitor is None or not VISITOR_EVENTS.take(visitor.visitor_id):
            return {"ok": False, "error": "rate_limited" if visitor else "not_connected"}
        try:
            contact = _clean_contact(data)
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

    @socketio.on("history", namespace=NAMESPACE)
    def on_history(data=None):
        visitor = _current()
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

    @socketio.on("typing", namespace=NAMESPACE)
    def on_typing(data=None):
        """The visitor types: agents viewing the channel see it (event `widget.typing`)."""
        visitor = _current()
        if visitor is None or not VISITOR_EVENTS.take(visitor.visitor_id):
            return {"ok": False}
        try:
            customer = customer_for(db.session, visitor)
            if customer is None:
                return {"ok": True}
            from app.usecases.ingest import open_conversation

            conversation = open_conversation(db.session, customer)
            socketio.emit("widget.typing", {"type": "widget.typing", "data": {
                "conversation_id": conversation.id if conversation else None,
                "customer_id": customer.id, "typing": bool((data or {}).get("typing"))}},
                namespace=AGENTS, to=[ADMINS_ROOM, channel_room(visitor.channel_id)])
            return {"ok": True}
        finally:
            db.session.remove()

    @socketio.on("receipt", namespace=NAMESPACE)
    def on_receipt(data=None):
        visitor = _current()
        if visitor is None or not VISITOR_EVENTS.take(visitor.visitor_id):
            return {"ok": False}
        try:
            return {"ok": True, "changed": _apply_receipts(visitor, data or {})}
        finally:
            db.session.remove()

    @socketio.on("status", namespace=NAMESPACE)
    def on_status(_data=None):
        visitor = _current()
        if visitor is None or not VISITOR_EVENTS.take(visitor.visitor_id):
            return {"ok": False}
        try:
            return {"ok": True, **status_for(db.session.get(Channel, visitor.channel_id))}
        finally:
            db.session.remove()


def agent_typing(conversation_id: int, agent_name: str, typing: bool) -> None:
    """Tell the conversation's visitor that an agent types (to be called by app/realtime's
    `typing` handler; see docs/widget.md)."""
    from app.infra.models import Conversation
    from app.infra.state import db

    conversation = db.session.get(Conversation, conversation_id)
    if conversation is None or socketio.server is None:
        return
    channel = db.session.get(Channel, conversation.channel_id)
    if channel is None or channel.kind != "webchat":
        return
    for room in identity_rooms(db.session, conversation.customer_id, channel.id):
        socketio.emit("typing", {"name": (agent_name or "").split()[0] if agent_name else None,
                                 "typing": bool(typing)}, namespace=NAMESPACE, to=room)

