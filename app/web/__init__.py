"""HTTP in, HTTP out: pages, /api/v1, webhooks, Socket.IO handlers, the site chat."""
from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    from app.infra.extensions import csrf
    from app.infra.fields import ColumnIntConverter

    # before any route is added: ids past the INTEGER range match no route (404)
    app.url_map.converters["int"] = ColumnIntConverter
    from app.web.api import bp as api_bp
    from app.web.auth import bp as auth_bp
    from app.web.board import bp as board_bp
    from app.web.campaigns import bp as campaigns_bp, public as unsubscribe_bp
    from app.web.canned import bp as canned_bp
    from app.web.feedback import bp as feedback_bp
    from app.web.help import bp as help_bp
    from app.web.inbox import bp as inbox_bp
    from app.web.reports import bp as reports_bp
    from app.web.routing_settings import bp as routing_settings_bp
    from app.web.settings import bp as settings_bp
    from app.web.webhooks import bp as webhooks_bp
    from app.web.widget import bp as widget_bp

    from app.web import headers

    for blueprint in (auth_bp, inbox_bp, board_bp, canned_bp, settings_bp, routing_settings_bp,
                      reports_bp, api_bp, webhooks_bp, widget_bp, feedback_bp, help_bp,
                      campaigns_bp, unsubscribe_bp):
        app.register_blueprint(blueprint)
    headers.install(app)
    # webhooks are signed by their senders, the widget has its own tokens, and the API checks
    # CSRF itself for cookie sessions (token calls need none)
    # the unsubscribe link is its own signed token (mail clients POST it, RFC 8058)
    for blueprint in (webhooks_bp, widget_bp, api_bp, unsubscribe_bp):
        csrf.exempt(blueprint)
    install_request_limits(app)


# paths whose body is a file: storage.max_attachment_bytes + limits.upload_overhead_bytes
UPLOAD_PATHS = ("/api/v1/uploads", "/api/v1/customers/import", "/widget/upload")


def request_limit(config: dict, path: str) -> int:
    """The most bytes a request body on `path` may have (config [limits])."""
    limits = config["limits"]
    if path in UPLOAD_PATHS:
        return int(config["storage"]["max_attachment_bytes"]) + int(limits["upload_overhead_bytes"])
    if path.startswith("/webhooks/"):
        return int(limits["webhook_bytes"])
    if path.startswith("/api/"):
        return int(limits["api_bytes"])
    if path.startswith("/widget"):
        return int(limits["widget_bytes"])
    return int(limits["max_request_bytes"])


def install_request_limits(app: Flask) -> None:
    """MAX_CONTENT_LENGTH for everything, a tighter limit per route family, checked before
    a view reads a byte: a declared Content-Length over the limit is answered 413 at once,
    and a chunked body is cut off by Werkzeug when it passes the limit."""
    from flask import request
    from werkzeug.exceptions import RequestEntityTooLarge

    config = app.config["THREADLINE"]
    app.config["MAX_CONTENT_LENGTH"] = max(int(config["limits"]["max_request_bytes"]),
                                           request_limit(config, UPLOAD_PATHS[0]))

    @app.before_request
    def _limit_body():
        limit = request_limit(config, request.path)
        request.max_content_length = limit
        # webhooks check a header-only secret first (a wrong one is 401/403, whatever the
        # size), then the size: app/web/webhooks.py
        if request.content_length is not None and request.content_length > limit \
                and not request.path.startswith("/webhooks/"):
            return too_large(limit)
        return None

    @app.errorhandler(RequestEntityTooLarge)
    def _entity_too_large(_exc):
        return too_large(request_limit(config, request.path))


def too_large(limit: int):
    """413 with a JSON body saying the limit."""
    from flask import jsonify

    response = jsonify(error="request_too_large", message="Request body too large", limit=limit)
    response.status_code = 413
    response.headers["Connection"] = "close"  # the unread body is not drained
    return response


def read_body(limit: int) -> bytes | None:
    """The request body, or None when it is longer than `limit` (a chunked body has no
    Content-Length to check first). Reads at most `limit` + 1 bytes."""
    from flask import request
    from werkzeug.exceptions import RequestEntityTooLarge

    stream = request.stream
    try:
        data = stream.read(limit + 1)
        if len(data) > limit or stream.read(1):
            return None
    except RequestEntityTooLarge:
        return None
    return data
