"""The knowledge base's pages: /settings/knowledge-base (admins: list, add, preview, edit,
delete; agents get the HTML 403 page) and the public /help (no login, per language, search,
article pages; drafts never shown)."""
from __future__ import annotations

import re

from sqlalchemy import select

from app.domain import kb
from app.infra.models import KbArticle
from app.infra.state import db
from tests import inbox_helpers as h
from tests.web.api.test_inbox_api import _login
from tests.web.test_settings_pages import _admin_client, _csrf


def _articles(app) -> list[KbArticle]:
    with app.app_context():
        found = list(db.session.scalars(select(KbArticle).order_by(KbArticle.id)))
        db.session.commit()
        return found


def test_admin_adds_previews_edits_and_deletes_an_article(app):
    with app.app_context():
        h.agent("agent@example.com", "Agent", ["Support"])
    agent = app.test_client()
    assert _login(agent, "agent@example.com", h.PASSWORD).status_code == 302
    assert agent.get("/settings/knowledge-base").status_code == 403
    admin = _admin_client(app)
    listing = admin.get("/settings/knowledge-base").get_data(as_text=True)
    assert 'href="/settings/knowledge-base/new"' in listing
    form = admin.get("/settings/knowledge-base/new").get_data(as_text=True)
    fields = {"csrf_token": _csrf(form), "title": "Сроки доставки", "language": "ru",
              "category": "Доставка", "keywords": "Казань, срок",
              "short_answer": "В Казань — 2–5 дней.",
              "body": "Доставка в **Казань**.<script>alert(1)</script>", "published": "on"}
    preview = admin.post("/settings/knowledge-base/new", data={**fields, "action": "preview"})
    page = preview.get_data(as_text=True)
    assert preview.status_code == 200 and "<strong>Казань</strong>" in page
    assert "<script>alert(1)" not in page and _articles(app) == []   # a preview saves nothing
    bad = admin.post("/settings/knowledge-base/new", data={**fields, "title": "", "action": "save"})
    assert bad.status_code == 422 and 'aria-invalid="true"' in bad.get_data(as_text=True)
    assert "Казань, срок" in bad.get_data(as_text=True)    # what was typed is kept
    saved = admin.post("/settings/knowledge-base/new", data={**fields, "action": "save"})
    assert saved.status_code == 302
    (article,) = _articles(app)
    assert article.keywords == ["Казань", "срок"] and article.published
    edit = admin.get(f"/settings/knowledge-base/{article.id}").get_data(as_text=True)
    changed = admin.post(f"/settings/knowledge-base/{article.id}",
                         data={**fields, "csrf_token": _csrf(edit), "title": "Доставка по России",
                               "action": "save"})
    assert changed.status_code == 302 and _articles(app)[0].title == "Доставка по России"
    listing = admin.get("/settings/knowledge-base").get_data(as_text=True)
    assert "Доставка по России" in listing
    deleted = admin.post(f"/settings/knowledge-base/{article.id}/delete",
                         data={"csrf_token": _csrf(listing)})
    assert deleted.status_code == 302 and _articles(app) == []


def test_help_pages_are_public_per_language_and_hide_drafts(app):
    with app.app_context():
        shown = kb.create(db.session, {"title": "Возврат товара", "language": "ru",
                                       "category": "Возврат", "published": True,
                                       "short_answer": "14 дней на возврат.",
                                       "body": "Вернуть товар можно в течение **14 дней**."})
        draft = kb.create(db.session, {"title": "Черновик о доставке", "language": "ru",
                                       "body": "Скоро."})
        polish = kb.create(db.session, {"title": "Zwrot towaru", "language": "pl",
                                        "published": True, "body": "30 dni na zwrot."})
        db.session.commit()
        ids = shown.id, draft.id, polish.id
    client = app.test_client()
    start = client.get("/help", headers={"Accept-Language": "pl,en;q=0.5"})
    assert start.status_code == 302 and start.headers["Location"].endswith("/help/pl")
    russian = client.get("/help/ru").get_data(as_text=True)
    assert "Возврат товара" in russian and "Черновик" not in russian and "Zwrot" not in russian
    assert "Поиск ответов" in russian                        # the page speaks Russian
    found = client.get("/help/ru", query_string={"q": "как вернуть покупку"}).get_data(as_text=True)
    assert f'href="/help/ru/{ids[0]}"' in found and "14 дней на возврат." in found
    article = client.get(f"/help/ru/{ids[0]}").get_data(as_text=True)
    assert "<strong>14 дней</strong>" in article
    assert client.get(f"/help/ru/{ids[1]}").status_code == 404       # a draft
    assert client.get(f"/help/ru/{ids[2]}").headers["Location"].endswith(f"/help/pl/{ids[2]}")
    assert client.get("/help/de").status_code == 404
    assert "Szukaj odpowiedzi" in client.get("/help/pl").get_data(as_text=True)
