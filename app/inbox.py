"""The agents' inbox page."""
from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import login_required

bp = Blueprint("inbox", __name__)


@bp.get("/")
@login_required
def index():
    return render_template("inbox.html")
