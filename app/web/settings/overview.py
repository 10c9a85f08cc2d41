"""`/settings`: the sections, with a count each."""
from __future__ import annotations

from flask import render_template
from sqlalchemy import func, select

from app.infra.models import Agent, ApiToken, Channel, Team
from app.infra.state import db
from app.web.settings import admin_required, bp, end_read


@bp.get("")
@admin_required
def index():
    counts = {name: db.session.scalar(select(func.count(model.id)))
              for name, model in (("channels", Channel), ("agents", Agent), ("teams", Team),
                                  ("tokens", ApiToken))}
    end_read()
    return render_template("settings/index.html", counts=counts, section="overview")
