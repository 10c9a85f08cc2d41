"""`/settings/teams`: create, rename, members, which channels each team sees."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from app.domain import agents as ops
from app.domain.audit import FieldError
from app.infra.models import Agent, Channel, Team
from app.infra.state import db
from app.web.settings import admin_required, bp, end_read, said


def _page(status: int = 200, new: dict | None = None, errors: dict | None = None,
          editing: dict | None = None):
    rows = list(db.session.scalars(select(Team).order_by(Team.name)))
    # every agent, deactivated ones marked: saving the form must not drop them from a team
    agents = list(db.session.scalars(select(Agent).where(Agent.role != "bot")
                                     .order_by(Agent.active.desc(), Agent.name)))
    channels = list(db.session.scalars(select(Channel).order_by(Channel.name)))
    end_read()
    return render_template("settings/teams.html", rows=rows, agents=agents, channels=channels,
                           new=new or {}, errors=errors or {}, editing=editing or {},
                           section="teams"), status


@bp.get("/teams")
@admin_required
def teams():
    return _page()


@bp.post("/teams")
@admin_required
def team_create():
    name = request.form.get("name", "").strip()
    try:
        team = ops.create_team(current_user._get_current_object(), name)
        db.session.commit()
    except FieldError as exc:
        db.session.rollback()
        return _page(422, new={"name": name}, errors={"new." + exc.field: said(exc)})
    flash(_("Team %(name)s created.", name=team.name), "ok")
    return redirect(url_for("settings.teams"))


@bp.post("/teams/<int:team_id>")
@admin_required
def team_update(team_id: int):
    team = db.session.get(Team, team_id) or abort(404)
    form = request.form
    data = {"name": form.get("name", "").strip(),
            "member_ids": [int(v) for v in form.getlist("member_ids") if v.isdigit()],
            "channel_ids": [int(v) for v in form.getlist("channel_ids") if v.isdigit()]}
    try:
        ops.update_team(current_user._get_current_object(), team, data)
        db.session.commit()
    except FieldError as exc:
        db.session.rollback()
        return _page(422, errors={f"{team_id}.{exc.field}": said(exc)},
                     editing={"id": team_id, **data})
    flash(_("Team %(name)s saved.", name=team.name), "ok")
    return redirect(url_for("settings.teams"))
