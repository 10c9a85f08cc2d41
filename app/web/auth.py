"""Sign-in for agents (sessions) and API tokens (Bearer)."""
from __future__ import annotations

import functools
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from flask_login.config import COOKIE_NAME

from app.infra.extensions import limiter, login_manager
from app.domain.agents import (
    MIN_PASSWORD,
    check_password,
    end_sessions,
    find_agent,
    hash_password,
    load_session_agent,
)
from app.infra.models import Agent
from app.infra.state import db
from app.web.inbox import LANGUAGES

bp = Blueprint("auth", __name__)
login_manager.login_view = "auth.login"


@login_manager.user_loader
def _load_agent(session_id: str) -> Agent | None:
    """Every request and Socket.IO event: the session's (or remember cookie's) id carries the
    agent's session generation; after a sign-out everywhere it no longer loads."""
    return load_session_agent(session_id)


def safe_next(target: str) -> str | None:
    """`next` after sign-in, only as a path on this site: an attacker's link must not bounce
    the agent elsewhere. Browsers drop tabs and newlines and read `\\` as `/`, so
    `/\t/evil.example` and `/\\evil.example` are `//evil.example`: anything but a plain
    absolute path (no scheme, no host, no control characters, no backslash) is refused."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(ch) < 32 or ord(ch) == 127 for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def _failed(response) -> bool:
    return response.status_code == 401


def _account_key() -> str:
    return "login-account:" + request.form.get("email", "").strip().lower()


def _account_limit() -> str:
    return current_app.config["THREADLINE"]["security"]["login_account_limit"]


@bp.route("/login", methods=["GET", "POST"])
# failed sign-ins only: per address (the client's, behind security.trusted_proxy_hops
# proxies), and per account whatever the address; 429 with Retry-After
@limiter.limit("10 per minute", methods=["POST"], deduct_when=_failed)
@limiter.limit(_account_limit, methods=["POST"], key_func=_account_key, deduct_when=_failed)
def login():
    if current_user.is_authenticated:
        return redirect(url_for("inbox.index"))
    if request.method == "POST":
        agent = find_agent(request.form.get("email", ""))
        if agent is not None and agent.active and check_password(agent, request.form.get("password", "")):
            login_user(agent, remember=bool(request.form.get("remember")))
            return redirect(safe_next(request.args.get("next", "")) or url_for("inbox.index"))
        from flask_babel import gettext as _

        flash(_("Wrong email or password."), "error")
        return render_template("login.html"), 401
    return render_template("login.html")


@bp.route("/account", methods=["GET", "POST"])
@login_required
@limiter.limit("10 per minute", methods=["POST"])
def account():
    """Password change (the current password is asked again) and interface language."""
    from flask_babel import gettext as _


    agent = current_user._get_current_object()
    if request.method == "POST":
        form = request.form
        if form.get("action") == "sign_out_everywhere":
            end_sessions(agent)
            db.session.commit()
            logout_user()
            flash(_("Signed out everywhere."), "ok")
            return redirect(url_for("auth.login"))
        if form.get("action") == "locale":
            agent.locale = form.get("locale") if form.get("locale") in LANGUAGES else None
            db.session.commit()
            flash(_("Language saved."), "ok")
            return redirect(url_for("auth.account"))
        if not check_password(agent, form.get("current_password", "")):
            flash(_("The current password is wrong."), "error")
            return render_template("account.html"), 400
        new = form.get("new_password", "")
        if len(new) < MIN_PASSWORD:
            flash(_("The new password needs at least %(n)s characters.", n=MIN_PASSWORD), "error")
            return render_template("account.html"), 400
        if new != form.get("confirm_password", ""):
            flash(_("The new passwords do not match."), "error")
            return render_template("account.html"), 400
        agent.password_hash = hash_password(new)
        db.session.commit()  # ends every session of the agent (app.domain.agents)
        # ...but this one, which proved the password: signed in again with the new generation
        remembered = current_app.config.get("REMEMBER_COOKIE_NAME", COOKIE_NAME) in request.cookies
        login_user(agent, remember=remembered)
        flash(_("Password changed. Other sessions were signed out."), "ok")
        return redirect(url_for("auth.account"))
    return render_template("account.html")


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    """Signs the agent out everywhere: every session, remember cookie and open socket."""
    end_sessions(current_user._get_current_object())
    db.session.commit()
    logout_user()
    return redirect(url_for("auth.login"))


def admin_required(view):
    """Signed in (else the login page), and an admin (else 403). A decorator rather than a
    before_request: APIFlask's OpenAPI builder trips over a plain blueprint's hooks."""
    @functools.wraps(view)
    @login_required
    def wrapper(*args, **kwargs):
        if not current_user.is_admin:
            abort(403)
        return view(*args, **kwargs)
    return wrapper


@bp.route("/invite/<token>", methods=["GET", "POST"])
@limiter.limit("20 per minute", methods=["POST"])
def invite(token: str):
    """A one-time link (an invite or a password reset): the agent sets a password and is
    signed in. A used or expired link says so."""
    from app.domain.agents import accept_invite, agent_for_invite
    from app.domain.audit import FieldError

    agent = agent_for_invite(token)
    if agent is None:
        db.session.rollback()
        return render_template("invite.html", agent=None, errors={}), 410
    if request.method == "POST":
        try:
            accept_invite(agent, request.form.get("password", ""),
                          request.form.get("confirm", ""))
        except FieldError as exc:
            db.session.rollback()
            return render_template("invite.html", agent=agent,
                                   errors={exc.field: exc.message}), 422
        db.session.commit()
        logout_user()
        login_user(agent)
        return redirect(url_for("inbox.index"))
    db.session.commit()
    return render_template("invite.html", agent=agent, errors={})
