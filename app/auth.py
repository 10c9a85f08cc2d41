"""Sign-in for agents (sessions) and API tokens (Bearer)."""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import func, select

from .extensions import limiter, login_manager
from .models import Agent, ApiToken, utcnow
from .state import db

bp = Blueprint("auth", __name__)
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)
_hasher = PasswordHasher()
login_manager.login_view = "auth.login"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(agent: Agent, password: str) -> bool:
    try:
        return _hasher.verify(agent.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def find_agent(email: str) -> Agent | None:
    return db.session.scalar(select(Agent).where(func.lower(Agent.email) == email.strip().lower()))


def create_token(agent: Agent, name: str = "") -> str:
    """Returns the token once; only its sha256 is stored."""
    token = "tl_" + secrets.token_urlsafe(32)
    db.session.add(ApiToken(agent_id=agent.id, name=name, token_hash=_token_hash(token)))
    return token


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def agent_for_token(token: str) -> Agent | None:
    row = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == _token_hash(token)))
    if row is None or not row.agent.active:
        return None
    now = utcnow()
    # "last used" to the minute is all an admin needs; writing it on every API call cost a
    # commit per request (a CRM pushing orders, the benchmark's replies)
    if row.last_used_at is None or now - row.last_used_at > TOKEN_TOUCH_INTERVAL:
        row.last_used_at = now
        db.session.commit()
    return row.agent



@login_manager.user_loader
def _load_agent(agent_id: str) -> Agent | None:
    agent = db.session.get(Agent, int(agent_id)) if agent_id.isdigit() else None
    return agent if agent is not None and agent.active else None


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("10 per minute", methods=["POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("inbox.index"))
    if request.method == "POST":
        agent = find_agent(request.form.get("email", ""))
        if agent is not None and agent.active and check_password(agent, request.form.get("password", "")):
            login_user(agent, remember=bool(request.form.get("remember")))
            target = request.args.get("next", "")
            # only local paths: an attacker's link must not bounce the agent elsewhere
            if not target.startswith("/") or target.startswith("//"):
                target = url_for("inbox.index")
            return redirect(target)
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

    from .users import MIN_PASSWORD

    agent = current_user._get_current_object()
    if request.method == "POST":
        form = request.form
        if form.get("action") == "locale":
            agent.locale = form.get("locale") if form.get("locale") in ("en", "ru") else None
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
        db.session.commit()
        flash(_("Password changed."), "ok")
        return redirect(url_for("auth.account"))
    return render_template("account.html")


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    logout_user()
    return redirect(url_for("auth.login"))
