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


def said(exc) -> str:
    """A domain FieldError's reason in the admin's language (the API keeps the English)."""
    import re

    from flask_babel import gettext as _

    message = exc.message
    known = [
        (r"^required$", lambda m: _("Required.")),
        (r"^at most (\d+) characters$", lambda m: _("At most %(n)s characters.", n=m.group(1))),
        (r"^1 to (\d+) characters$", lambda m: _("Required, at most %(n)s characters.", n=m.group(1))),
        (r"^a channel named .* exists already$", lambda m: _("A channel with this name exists already.")),
        (r"^a team with this name exists already$", lambda m: _("A team with this name exists already.")),
        (r"^an agent with this email exists already$", lambda m: _("An agent with this email exists already.")),
        (r"^not an email address$", lambda m: _("Not an email address.")),
        (r"^the last admin cannot be removed or demoted$", lambda m: _("The last admin cannot be removed or demoted.")),
        (r"^the agent is deactivated$", lambda m: _("The agent is deactivated.")),
        (r"^choose an agent$", lambda m: _("Choose an agent.")),
        (r"^connection failed: (.*)$", lambda m: _("Connection failed: %(reason)s", reason=m.group(1))),
        (r"^token: expected the form", lambda m: _("Expected a token like 123456789:AA… as @BotFather gives it.")),
        (r"^missing setting\(s\) for \w+: (.*)$", lambda m: _("Required.")),
        (r"^no published article (\d+)$", lambda m: _("No published article %(n)s.", n=m.group(1))),
        (r"^no team (\S+)$", lambda m: _("No team %(name)s.", name=m.group(1))),
        (r"^at most (\d+) items, got \d+$", lambda m: _("At most %(n)s items.", n=m.group(1))),
        (r"^one of article, handoff, text", lambda m: _("Write article:<number>, handoff, handoff:<team> or text:<reply>.")),
        (r"^the number of a published article$", lambda m: _("Write article:<number>, handoff, handoff:<team> or text:<reply>.")),
        (r"^required with items$", lambda m: _("Required.")),
        (r"^required for a text item$", lambda m: _("Required.")),
    ]
    for pattern, translate in known:
        match = re.match(pattern, message, re.S)
        if match:
            return translate(match)
    return message


def public_base() -> str:
    """The address senders (Telegram, Meta, a shop, a site) reach this server at."""
    from app.infra.state import config

    return (config["server"].get("public_url") or request.url_root).rstrip("/")


def end_read() -> None:
    """SQLite: end the read transaction before rendering (it holds a lock otherwise)."""
    from app.infra.state import db

    db.session.commit()


from app.web.settings import overview, channels, agents, teams, tokens, webhooks, crm, audit  # noqa: E402,F401
from app.web.settings import bots  # noqa: E402,F401  (outside bots, issue 18)
from app.web.settings import feedback  # noqa: E402,F401  (CSAT: issue 21)
from app.web.settings import knowledge_base  # noqa: E402,F401  (issue 18)
