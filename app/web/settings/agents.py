"""`/settings/agents`: invite (a one-time link), role, teams, name, language, deactivate,
reactivate, reset password."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from app.domain import agents as ops
from app.domain.audit import FieldError
from app.infra.models import Agent, Team
from app.infra.state import db
from app.web.settings import admin_required, bp, end_read, public_base, said


def invite_url(token: str) -> str:
    return f"{public_base()}{url_for('auth.invite', token=token)}"


def _page(status: int = 200, new: dict | None = None, errors: dict | None = None,
          link: dict | None = None, editing: dict | None = None):
    rows = list(db.session.scalars(select(Agent).where(Agent.role != "bot")   # bots: /settings/bots
                                   .order_by(Agent.active.desc(), Agent.name)))
    teams = list(db.session.scalars(select(Team).order_by(Team.name)))
    end_read()
    return render_template("settings/agents.html", rows=rows, teams=teams, new=new or {
        "role": "agent", "team_ids": []}, errors=errors or {}, link=link, editing=editing or {},
        section="agents"), status


def _team_ids() -> list[int]:
    return [int(t) for t in request.form.getlist("team_ids") if t.isdigit()]


@bp.get("/agents")
@admin_required
def agents():
    return _page()


@bp.post("/agents")
@admin_required
def agent_invite():
    form = request.form
    new = {"email": form.get("email", "").strip(), "name": form.get("name", "").strip(),
           "role": form.get("role", "agent"), "team_ids": _team_ids(),
           "locale": form.get("locale", "")}
    try:
        agent, token = ops.invite_agent(current_user._get_current_object(), new["email"],
                                        new["name"], new["role"], new["team_ids"],
                                        new["locale"] or None)
        db.session.commit()
    except FieldError as exc:
        db.session.rollback()
        return _page(422, new=new, errors={exc.field: said(exc)})
    return _page(201, link={"agent": agent.name, "email": agent.email, "url": invite_url(token),
                            "kind": "invite"})


def _agent(agent_id: int) -> Agent:
    agent = db.session.get(Agent, agent_id)
    if agent is None:
        abort(404)
    return agent


@bp.post("/agents/<int:agent_id>")
@admin_required
def agent_update(agent_id: int):
    agent = _agent(agent_id)
    form = request.form
    data: dict = {}
    if form.get("action") == "deactivate":
        data = {"active": False}
    elif form.get("action") == "reactivate":
        data = {"active": True}
    else:
        data = {"name": form.get("name", "").strip(), "role": form.get("role", agent.role),
                "team_ids": _team_ids(), "locale": form.get("locale") or None}
    try:
        ops.update_agent(current_user._get_current_object(), agent, data)
        db.session.commit()
    except FieldError as exc:
        db.session.rollback()
        return _page(422, errors={f"{agent_id}.{exc.field}": said(exc)},
                     editing={"id": agent_id, **data})
    flash(_("%(name)s saved.", name=agent.name) if "name" in data
          else _("%(name)s deactivated: signed out everywhere, API tokens revoked, open conversations returned to the queue.", name=agent.name)
          if data.get("active") is False else _("%(name)s reactivated.", name=agent.name), "ok")
    return redirect(url_for("settings.agents"))


@bp.post("/agents/<int:agent_id>/reset")
@admin_required
def agent_reset(agent_id: int):
    agent = _agent(agent_id)
    token = ops.reset_password(current_user._get_current_object(), agent)
    db.session.commit()
    return _page(link={"agent": agent.name, "email": agent.email, "url": invite_url(token),
                       "kind": "reset"})
