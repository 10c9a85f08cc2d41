"""The public feedback page of the CSAT email (no login): `/feedback/<token>` with `?score=N`
(one click in the email) records the score; the page offers the stars again (the score may be
changed until the link expires) and an optional comment box (a POST with the CSRF token).
The token is signed (app.usecases.csat.token_for) and names one survey. Blueprint
"feedback"."""
from __future__ import annotations

from flask import Blueprint, render_template, request
from flask_babel import force_locale

from app.domain import csat as csat_rules
from app.infra.extensions import limiter
from app.infra.state import db
from app.usecases import csat

bp = Blueprint("feedback", __name__)


def _score(raw: str | None) -> int | None:
    raw = (raw or "").strip()
    return int(raw) if raw in ("1", "2", "3", "4", "5") else None


@bp.route("/feedback/<token>", methods=["GET", "POST"])
@limiter.limit("60/minute")
def feedback(token: str):
    session = db.session
    survey, problem = csat.survey_for_token(session, token[:200])
    if survey is None:
        session.commit()
        language = request.accept_languages.best_match(csat_rules.LANGUAGES) or "en"
        with force_locale(language):
            return render_template("feedback.html", problem=problem, survey=None,
                                   language=language), 410 if problem == "expired" else 404
    saved = False
    if request.method == "POST":
        score = _score(request.form.get("score"))
        if score is not None:
            csat.record_score(session, survey, score, "link")
        comment = (request.form.get("comment") or "").strip()[:csat_rules.MAX_COMMENT]
        if comment != (survey.comment or ""):
            csat.record_comment(session, survey, comment)
        saved = True
    else:
        score = _score(request.args.get("score"))
        if score is not None and score != survey.score:
            csat.record_score(session, survey, score, "link")
    session.commit()
    with force_locale(survey.language):
        return render_template("feedback.html", survey=survey, problem=None, saved=saved,
                               token=token, language=survey.language,
                               scores=csat_rules.SCORES)
