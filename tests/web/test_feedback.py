"""The public feedback page (`/feedback/<token>`, no login) and the admins' settings page
`/settings/feedback`: a signed token names one survey, a forged one is 404 and an expired one
410 with nothing recorded; the comment form needs its CSRF token; the settings form keeps what
was typed next to a bad field and writes nothing."""
from __future__ import annotations

import re
import time
from datetime import timedelta

from sqlalchemy import select

from app.infra.models import AuditLog, CsatSettings, CsatSurvey, utcnow
from app.infra.state import db
from app.usecases import csat
from tests import inbox_helpers as h
from tests.web.api.test_inbox_api import _login


def _csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _survey(telegram_api, language: str = "pl") -> int:
    support, _sales = h.channels(telegram_api)
    message = h.inbound(support, 4321, "Dzień dobry")
    survey = CsatSurvey(conversation_id=message.conversation_id,
                        customer_id=message.customer_id, channel_id=support.id,
                        language=language, asked_at=utcnow())
    db.session.add(survey)
    db.session.commit()
    return survey.id


def _read(survey_id: int) -> CsatSurvey:
    db.session.expire_all()
    found = db.session.get(CsatSurvey, survey_id)
    db.session.commit()
    return found


def test_link_records_and_the_form_needs_its_csrf_token(app, ctx, telegram_api):
    survey_id = _survey(telegram_api)
    token = csat.token_for(survey_id)
    client = app.test_client()
    page = client.get(f"/feedback/{token}?score=3")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Dziękujemy! Twoja ocena: 3 z 5." in text and 'lang="pl"' in text
    assert _read(survey_id).score == 3 and _read(survey_id).answered_via == "link"
    # a score outside 1-5 is ignored, the page still shows
    assert client.get(f"/feedback/{token}?score=9").status_code == 200
    assert _read(survey_id).score == 3
    # the comment form without its token is refused; with it, saved
    refused = client.post(f"/feedback/{token}", data={"comment": "Spam"})
    assert refused.status_code == 400 and _read(survey_id).comment is None
    saved = client.post(f"/feedback/{token}", data={"comment": "Szybko i miło",
                                                     "csrf_token": _csrf(text)})
    assert saved.status_code == 200 and "Twój komentarz został zapisany" in saved.get_data(
        as_text=True)
    assert _read(survey_id).comment == "Szybko i miło" and _read(survey_id).score == 3


def test_forged_and_expired_links_record_nothing(app, ctx, telegram_api, monkeypatch):
    survey_id = _survey(telegram_api)
    client = app.test_client()
    forged = csat.token_for(survey_id)[:-2] + "xx"
    page = client.get(f"/feedback/{forged}?score=1", headers={"Accept-Language": "ru"})
    assert page.status_code == 404
    assert "Эта ссылка для отзыва недействительна." in page.get_data(as_text=True)
    token = csat.token_for(survey_id)
    monkeypatch.setattr(csat, "LINK_VALID", timedelta(seconds=0))
    time.sleep(1.1)
    page = client.get(f"/feedback/{token}?score=1", headers={"Accept-Language": "pl"})
    assert page.status_code == 410 and "Ten link do oceny wygasł." in page.get_data(as_text=True)
    assert _read(survey_id).score is None


def _settings(app) -> CsatSettings | None:
    with app.app_context():
        found = db.session.get(CsatSettings, 1)
        out = None if found is None else (found.enabled, found.throttle_days,
                                          dict(found.questions))
        db.session.commit()
        return out


def test_settings_page_admins_only_errors_kept(app):
    with app.app_context():
        h.agent("agent@example.com", "Agent", ["Support"])
        h.agent("boss@example.com", "Босс", ["Support"], role="admin")
    agent = app.test_client()
    assert _login(agent, "agent@example.com", h.PASSWORD).status_code == 302
    assert agent.get("/settings/feedback").status_code == 403
    admin = app.test_client()
    assert _login(admin, "boss@example.com", h.PASSWORD).status_code == 302
    page = admin.get("/settings/feedback", headers={"Accept-Language": "ru"})
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "Просить клиентов об оценке" in text
    assert 'href="/settings/feedback"' in text
    bad = admin.post("/settings/feedback", data={
        "csrf_token": _csrf(text), "enabled": "on", "throttle_days": "месяц",
        "question_ru": "Как всё прошло?", "question_pl": "", "question_en": ""})
    assert bad.status_code == 422
    body = bad.get_data(as_text=True)
    assert "Как всё прошло?" in body and 'value="месяц"' in body and "field-error" in body
    assert _settings(app) is None or _settings(app)[0] is False   # nothing written
    good = admin.post("/settings/feedback", data={
        "csrf_token": _csrf(text), "enabled": "on", "throttle_days": "14",
        "question_ru": "Как всё прошло?", "question_pl": "", "question_en": ""})
    assert good.status_code == 302
    assert _settings(app) == (True, 14, {"ru": "Как всё прошло?"})
    with app.app_context():
        assert db.session.scalar(select(AuditLog.action).where(
            AuditLog.action == "csat.settings").limit(1)) == "csat.settings"
        db.session.commit()
