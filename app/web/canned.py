"""The admins' page for canned replies (`/admin/canned-replies`): list, add, edit, delete.

Plain forms (session + CSRF, like /account); the same rules as the JSON API
(`/api/v1/canned-replies`, app/api/inbox.py): the shortcut is letters, digits, _ and -,
unique; the text may use {{customer.first_name}}, {{customer.name}}, {{agent.name}},
{{agent.first_name}}, filled in by the composer when an agent types /shortcut."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from marshmallow import ValidationError
from sqlalchemy import select

from app.domain.canned import add_canned, shortcut_taken, update_canned
from app.infra.inbox_schemas import CannedReplyIn
from app.infra.models import CannedReply
from app.infra.state import db
from app.web.auth import admin_required

bp = Blueprint("canned", __name__, url_prefix="/admin")
VARIABLES = ["{{customer.first_name}}", "{{customer.name}}", "{{agent.name}}",
             "{{agent.first_name}}"]


def _errors(exc: ValidationError) -> list[str]:
    """The schema's field errors, said in the agent's language."""
    said = {
        "shortcut": _("The shortcut takes letters, digits, _ and - only (at most 60)."),
        "title": _("The title takes at most 200 characters."),
        "text": _("The text is required (at most 20,000 characters)."),
    }
    return [said.get(field, f"{field}: {messages}") for field, messages in exc.messages.items()]


def _form() -> dict[str, str]:
    form = request.form
    return {"shortcut": form.get("shortcut", "").strip().lstrip("/"),
            "title": form.get("title", "").strip(), "text": form.get("text", "").strip()}


def _page(status: int = 200, new: dict[str, str] | None = None,
          editing: dict[str, Any] | None = None):
    replies = list(db.session.scalars(select(CannedReply).order_by(CannedReply.shortcut)))
    db.session.commit()  # SQLite: end the read transaction
    return render_template("canned_replies.html", replies=replies, variables=VARIABLES,
                           new=new or {}, editing=editing or {}), status


def _validated_form(exclude: int | None = None) -> tuple[dict[str, Any], bool]:
    """The posted fields, checked as the API checks them; errors are flashed."""
    data = _form()
    try:
        data = CannedReplyIn().load(data)
    except ValidationError as exc:
        for message in _errors(exc):
            flash(message, "error")
        return data, False
    if shortcut_taken(db.session, data["shortcut"], exclude=exclude):
        flash(_("The shortcut /%(shortcut)s is already in use.", shortcut=data["shortcut"]), "error")
        return data, False
    return data, True


@bp.get("/canned-replies")
@admin_required
def index():
    return _page()


@bp.post("/canned-replies")
@admin_required
def create():
    data, valid = _validated_form()
    if not valid:
        return _page(422, new=data)
    add_canned(db.session, data, current_user)
    db.session.commit()
    flash(_("Canned reply /%(shortcut)s added.", shortcut=data["shortcut"]), "ok")
    return redirect(url_for("canned.index"))


@bp.post("/canned-replies/<int:reply_id>")
@admin_required
def update(reply_id: int):
    reply = db.session.get(CannedReply, reply_id) or abort(404)
    data, valid = _validated_form(exclude=reply_id)
    if not valid:
        return _page(422, editing={"id": reply_id, **data})
    update_canned(db.session, reply, data)
    db.session.commit()
    flash(_("Canned reply /%(shortcut)s saved.", shortcut=reply.shortcut), "ok")
    return redirect(url_for("canned.index"))


@bp.post("/canned-replies/<int:reply_id>/delete")
@admin_required
def delete(reply_id: int):
    reply = db.session.get(CannedReply, reply_id) or abort(404)
    shortcut = reply.shortcut
    db.session.delete(reply)
    db.session.commit()
    flash(_("Canned reply /%(shortcut)s deleted.", shortcut=shortcut), "ok")
    return redirect(url_for("canned.index"))
