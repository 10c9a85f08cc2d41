"""The admins' settings area (`/settings/...`): one small module per section. Pages are plain
forms (session + CSRF); the work is done by domain operations (app.domain.channels, .agents),
which validate, write, audit and reach live sockets; views translate their FieldError into a
message next to the field, keeping what was typed."""
from __future__ import annotations

import functools

from flask import Blueprint, render_template, request
from flask_login import current_user, login_required

bp = Blueprint("settings", __name__, url_prefix="/settings")


def admin_required(view):
    """Signed in (else the login page), and an admin (else an HTML 403 page, not JSON)."""
    @functools.wraps(view)
    @login_required
    def wrapper(*args, **kwargs):
        if not current_user.is_admin:
            return render_template("settings/forbidden.html"), 403
        return view(*args, **kwargs)
    return wrapper


def public_base() -> str:
    """The address senders (Telegram, Meta, a shop, a site) reach this server at."""
    from app.infra.state import config

    return (config["server"].get("public_url") or request.url_root).rstrip("/")


def end_read() -> None:
    """SQLite: end the read transaction before rendering (it holds a lock otherwise)."""
    from app.infra.state import db

    db.session.commit()


from app.web.settings import overview, channels, agents, teams, tokens, audit  # noqa: E402,F401
