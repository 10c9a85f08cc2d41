"""Canned replies (inserted in the composer with /shortcut); admins edit them."""
from __future__ import annotations

from apiflask import abort
from sqlalchemy import select

from app.domain.canned import add_canned
from app.domain.canned import update_canned as update_canned_reply
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


@bp.post("/canned-replies")
@bp.auth_required(token_auth)
@bp.input(CannedReplyIn, arg_name="data")
@bp.output(CannedReplyOut, status_code=201)
@bp.doc(summary="Add a canned reply (admins)")
def create_canned(data):
    require_admin()
    reply = add_canned(db.session, data, current_agent())
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
    update_canned_reply(db.session, reply, data)
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

