"""`/settings/audit`: admin actions, newest first (who, what, when, before/after)."""
from __future__ import annotations

import json

from flask import render_template, request
from sqlalchemy import select

from app.domain.audit import recent
from app.infra.models import Agent
from app.infra.state import db
from app.web.settings import admin_required, bp, end_read

PAGE = 50


@bp.get("/audit")
@admin_required
def audit_log():
    before = request.args.get("before", "")
    rows = recent(PAGE + 1, int(before) if before.isdigit() else None,
                  request.args.get("type") or None)
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    names = {a.id: a.name for a in db.session.scalars(
        select(Agent).where(Agent.id.in_({r.actor_id for r in rows if r.actor_id} or {-1})))}
    end_read()
    return render_template("settings/audit.html", rows=rows, names=names, section="audit",
                           show=lambda value: json.dumps(value, ensure_ascii=False,
                                                         sort_keys=True, default=str),
                           next_before=rows[-1].id if more else None)
