"""Feedback after a conversation (CSAT, DESIGN 3b): a conversation's answer, and the account's
settings (admins). The report is /api/v1/reports/csat (app/web/api/reports.py)."""
from __future__ import annotations

from apiflask import abort

from app.domain.audit import FieldError
from app.infra.csat_schemas import CsatOut, CsatSettingsOut, CsatSettingsPatch
from app.infra.state import db
from app.usecases import csat
from app.web.api import bp, require_admin, token_auth
from app.web.api.conversations import get_visible_conversation


@bp.get("/conversations/<int:conversation_id>/csat")
@bp.auth_required(token_auth)
@bp.output(CsatOut)
@bp.doc(summary="The customer's feedback on a conversation: score 1-5, comment, when asked "
                "and answered (`asked: false` when no question was sent)")
def conversation_csat(conversation_id: int):
    conversation = get_visible_conversation(conversation_id)
    survey = csat.for_conversation(db.session, conversation.id)
    out = {"asked": survey is not None, "survey": survey}
    db.session.commit()
    return out


@bp.get("/settings/csat")
@bp.auth_required(token_auth)
@bp.output(CsatSettingsOut)
@bp.doc(summary="Feedback (CSAT) settings: on/off, the question per language, the throttle "
                "(admins)")
def get_csat_settings():
    require_admin()
    out = csat.settings_out(csat.get_settings(db.session))
    db.session.commit()
    return out


@bp.patch("/settings/csat")
@bp.auth_required(token_auth)
@bp.input(CsatSettingsPatch, arg_name="data")
@bp.output(CsatSettingsOut)
@bp.doc(summary="Change the feedback (CSAT) settings (admins); 422 naming the field")
def patch_csat_settings(data):
    agent = require_admin()
    try:
        found = csat.update_settings(db.session, agent, data)
    except FieldError as exc:
        db.session.rollback()
        abort(422, f"{exc.field}: {exc.message}", detail={"json": {exc.field: [exc.message]}})
    out = csat.settings_out(found)
    db.session.commit()
    return out
