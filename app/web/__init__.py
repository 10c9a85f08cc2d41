"""HTTP in, HTTP out: pages, /api/v1, webhooks, Socket.IO handlers, the site chat."""
from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    from app.infra.extensions import csrf
    from app.web.api import bp as api_bp
    from app.web.auth import bp as auth_bp
    from app.web.board import bp as board_bp
    from app.web.canned import bp as canned_bp
    from app.web.inbox import bp as inbox_bp
    from app.web.routing_settings import bp as routing_settings_bp
    from app.web.webhooks import bp as webhooks_bp
    from app.web.widget import bp as widget_bp

    for blueprint in (auth_bp, inbox_bp, board_bp, canned_bp, routing_settings_bp, api_bp, webhooks_bp,
                      widget_bp):
        app.register_blueprint(blueprint)
    # webhooks are signed by their senders, the widget has its own tokens, and the API checks
    # CSRF itself for cookie sessions (token calls need none)
    for blueprint in (webhooks_bp, widget_bp, api_bp):
        csrf.exempt(blueprint)
