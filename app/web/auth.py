"""Sign-in for agents (sessions) and API tokens (Bearer)."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from app.infra.extensions import limiter, login_manager
from app.domain.agents import MIN_PASSWORD, check_password, find_agent, hash_password
from app.infra.models import Agent
from app.infra.state import db

bp = Blueprint("auth", __name__)
login_manager.login_view = "auth.login"


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
