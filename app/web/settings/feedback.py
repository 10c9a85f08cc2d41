"""`/settings/feedback`: feedback after a conversation (CSAT): on/off, the question in each
language, and how often a customer may be asked (the same operation as PATCH
/api/v1/settings/csat)."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app.domain import csat as csat_rules
from app.domain.audit import FieldError
from app.infra.state import db
from app.usecases import csat
from app.web.settings import admin_required, bp, end_read, said


def _page(status: int = 200, values: dict | None = None, errors: dict | None = None):
    current = csat.settings_out(csat.get_settings(db.session))
    db.session.commit()
    end_read()
    names = {"ru": _("Russian"), "pl": _("Polish"), "en": _("English")}
    return render_template("settings/feedback.html", values=values or current,
                           defaults=csat_rules.QUESTIONS, languages=csat_rules.LANGUAGES,
                           names=names, errors=errors or {}, section="feedback"), status


@bp.get("/feedback")
@admin_required
def feedback():
    return _page()


@bp.post("/feedback")
@admin_required
def feedback_save():
    form = request.form
    raw_days = form.get("throttle_days", "").strip()
    values = {"enabled": form.get("enabled") == "on", "throttle_days": raw_days,
              "questions": {lang: form.get(f"question_{lang}", "") for lang in
                            csat_rules.LANGUAGES}}
    try:
        if not raw_days.isdigit():
            raise FieldError("throttle_days", "a whole number of days from 0 to "
                                              f"{csat_rules.MAX_THROTTLE_DAYS}")
        csat.update_settings(db.session, current_user._get_current_object(),
                             {**values, "throttle_days": int(raw_days)})
        db.session.commit()
    except FieldError as exc:
        db.session.rollback()
        return _page(422, values=values, errors={exc.field: said(exc)})
    flash(_("Feedback settings saved."), "ok")
    return redirect(url_for("settings.feedback"))
