"""`/settings/tokens`: API tokens of every agent (label, last used), create and revoke."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from app.domain import agents as ops
from app.domain.audit import FieldError
from app.infra.models import Agent, ApiToken
from app.infra.state import db
from app.web.settings import admin_required, bp, end_read, said


def _page(status: int = 200, new: dict | None = None, errors: dict | None = None,
          created: str | None = None):
    rows = ops.list_tokens()
    agents = list(db.session.scalars(select(Agent).where(Agent.active.is_(True)).order_by(Agent.name)))
    names = {a.id: a.name for a in db.session.scalars(select(Agent))}
    end_read()
    return render_template("settings/tokens.html", rows=rows, agents=agents, names=names,
                           new=new or {"agent_id": current_user.id}, errors=errors or {},
                           created=created, section="tokens"), status


@bp.get("/tokens")
@admin_required
def tokens():
    return _page()


@bp.post("/tokens")
@admin_required
def token_create():
    form = request.form
    new = {"name": form.get("name", "").strip(),
           "agent_id": int(form["agent_id"]) if form.get("agent_id", "").isdigit() else None}
    agent = db.session.get(Agent, new["agent_id"]) if new["agent_id"] else None
    try:
        if agent is None:
            raise FieldError("agent_id", "choose an agent")
        value = ops.issue_token(current_user._get_current_object(), agent, new["name"])
        db.session.commit()
    except FieldError as exc:
        db.session.rollback()
        return _page(422, new=new, errors={exc.field: said(exc)})
    return _page(201, created=value)


@bp.post("/tokens/<int:token_id>/revoke")
@admin_required
def token_revoke(token_id: int):
    token = db.session.get(ApiToken, token_id) or abort(404)
    ops.revoke_token(current_user._get_current_object(), token)
    db.session.commit()
    flash(_("Token revoked."), "ok")
    return redirect(url_for("settings.tokens"))
