"""The site chat over HTTP: `/widget.js` (the loader a site embeds), the widget's iframe
(refused unless the embedding origin is allowed), uploads from the frame, file links, and
the admins' demo page. Blueprint "widget"."""
from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path

from flask import Blueprint, Response, abort, jsonify, render_template, request, send_file
from itsdangerous import BadSignature
from sqlalchemy import select

from connectors.webchat import (
    MAX_TEXT,
    allowed_origins,
    flag,
    max_file_bytes,
    normalize_origin,
    origin_allowed,
    prechat_mode,
)

from app.infra.extensions import limiter
from app.web.origins import foreign_origin
from app.infra.models import Attachment, Channel
from app.web.auth import admin_required
from app.web.widget.tokens import (
    frame_token,
    read_file_token,
    read_frame_token,
    read_visitor_token,
    upload_token,
)
from app.web.widget import uploads
from app.web.widget.visitors import NAMESPACE, client_ip, language

log = logging.getLogger(__name__)
bp = Blueprint("widget", __name__)
STATIC = Path(__file__).resolve().parents[3] / "static"


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
        "lang": language(request.args.get("lang")),
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
    return f"visitor:{visitor[0]}" if visitor else f"ip:{client_ip()}"


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
    if time.time() - uploads.last_expiry > uploads.EXPIRY_EVERY:
        uploads.expire_uploads()
    from app.infra.state import config

    storage = config["storage"]
    folder = uploads.visitor_uploads_dir(visitor_id)
    count, size = uploads.waiting_uploads(folder)
    if count >= int(storage["widget_upload_max_files"]) \
            or size + len(data) > int(storage["widget_upload_max_bytes"]):
        return jsonify(error="too_many_uploads", files=int(storage["widget_upload_max_files"]),
                       bytes=int(storage["widget_upload_max_bytes"])), 429
    upload_id = uuid.uuid4().hex
    folder.mkdir(parents=True, exist_ok=True)
    (folder / upload_id).write_bytes(data)
    token = upload_token({
        "f": upload_id, "v": visitor_id, "c": channel.public_id,
        "n": Path(item.filename).name[:200],
        "t": (item.mimetype or "application/octet-stream")[:120], "s": len(data)})
    return jsonify(upload=token, name=Path(item.filename).name[:200], size=len(data))


@bp.get("/widget/file/<token>")
@limiter.limit("120/minute")
def file(token: str):
    from app.infra.state import db
    from app.infra.storage import attachment_path

    try:
        data = read_file_token(token)
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
                           lang=language(request.args.get("lang") or "en"))
