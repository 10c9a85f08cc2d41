"""Canned replies (inserted in the composer with /shortcut); admins edit them."""
from __future__ import annotations

from apiflask import abort
from sqlalchemy import select

from app.infra.inbox_schemas import CannedReplyIn, CannedReplyList, CannedReplyOut, CannedReplyPatch
from app.infra.models import CannedReply
from app.infra.state import db
from app.web.api.base import bp, current_agent, require_admin, token_auth


@bp.get("/canned-replies")
@bp.auth_required(token_auth)
@bp.output(CannedReplyList)
@bp.doc(summary="Canned replies (inserted in the composer with /shortcut)")
def list_canned():
    return {"items": list(db.session.scalars(select(CannedReply).order_by(CannedReply.shortcut)))}


def _shortcut_taken(shortcut: str, exclude: int | None = None) -> None:
    stmt = select(CannedReply.id).where(CannedReply.shortcut == shortcut)
    if exclude:
        stmt = stmt.where(CannedReply.id != exclude)
    if db.session.scalar(stmt):
        abort(422, "shortcut taken", detail={"json": {"shortcut": ["already in use"]}})


@bp.post("/canned-replies")
@bp.auth_required(token_auth)
@bp.input(CannedReplyIn, arg_name="data")
@bp.output(CannedReplyOut, status_code=201)
@bp.doc(summary="Add a canned reply (admins)")
def create_canned(data):
    require_admin()
    _shortcut_taken(data["shortcut"])
    reply = CannedReply(created_by_id=current_agent().id, **data)
    db.session.add(reply)
    db.session.commit()
    return reply


@bp.patch("/canned-replies/<int:reply_id>")
@bp.auth_required(token_auth)
@bp.input(CannedReplyPatch, arg_name="data")
@bp.output(CannedReplyOut)
@bp.doc(summary="Change a canned reply (admins)")
def update_canned(reply_id: int, data):
    require_admin()
    reply = db.session.get(CannedReply, reply_id) or abort(404, "canned reply not found")
    if "shortcut" in data:
        _shortcut_taken(data["shortcut"], exclude=reply_id)
    for key, value in data.items():
        setattr(reply, key, value)
    db.session.commit()
    return reply


@bp.delete("/canned-replies/<int:reply_id>")
@bp.auth_required(token_auth)
@bp.output({}, status_code=204)
@bp.doc(summary="Delete a canned reply (admins)")
def delete_canned(reply_id: int):
    require_admin()
    reply = db.session.get(CannedReply, reply_id) or abort(404, "canned reply not found")
    db.session.delete(reply)
    db.session.commit()
    return ""

