"""/api/v1/kb: articles (admins write, 422 naming the field, lists {items, next_cursor}) and
search with word forms."""
from __future__ import annotations

from sqlalchemy import func, select

from app.infra.models import KbArticle
from app.infra.state import db
from tests import inbox_helpers as h

ARTICLE = {"title": "Сроки доставки", "body": "Доставка в **Казань** — 2–5 дней.",
           "short_answer": "В Казань — 2–5 рабочих дней.", "language": "ru",
           "category": "Доставка", "keywords": "срок, Казань", "published": True}


def test_admin_writes_an_article_and_everyone_reads_and_searches(app, api):
    created = api.post("/kb/articles", json=ARTICLE)
    assert created.status_code == 201, created.json
    article = created.json
    assert article["keywords"] == ["срок", "Казань"]
    assert "<strong>Казань</strong>" in article["body_html"]
    assert article["url"] == f"/help/ru/{article['id']}"
    found = api.get("/kb/search", query_string={"q": "доставку в Казани", "language": "ru"})
    assert found.status_code == 200
    (hit,) = found.json["items"]
    assert hit["id"] == article["id"] and hit["answers"] is True and hit["confidence"] > 0.4
    assert found.json["next_cursor"] is None
    changed = api.patch(f"/kb/articles/{article['id']}", json={"published": False})
    assert changed.status_code == 200 and changed.json["published"] is False
    assert api.get("/kb/search", query_string={"q": "Казань"}).json["items"] == []
    assert api.get(f"/kb/articles/{article['id']}").json["title"] == "Сроки доставки"
    assert api.delete(f"/kb/articles/{article['id']}").status_code == 204
    assert api.get(f"/kb/articles/{article['id']}").status_code == 404


def test_list_pages_with_a_cursor_and_filters(app, api):
    for n in range(5):
        language = "pl" if n % 2 else "ru"
        assert api.post("/kb/articles", json={**ARTICLE, "title": f"A{n}",
                                              "language": language}).status_code == 201
    first = api.get("/kb/articles", query_string={"limit": 2}).json
    assert [a["title"] for a in first["items"]] == ["A4", "A3"] and first["next_cursor"]
    second = api.get("/kb/articles", query_string={"limit": 2, "cursor": first["next_cursor"]})
    assert [a["title"] for a in second.json["items"]] == ["A2", "A1"]
    polish = api.get("/kb/articles", query_string={"language": "pl"}).json["items"]
    assert [a["title"] for a in polish] == ["A3", "A1"]
    assert api.get("/kb/articles", query_string={"language": "de"}).status_code == 422


def test_bad_input_is_422_with_the_field_and_nothing_written(app, api):
    response = api.post("/kb/articles", json={**ARTICLE, "language": "de"})
    assert response.status_code == 422
    assert "language" in response.json["detail"]["json"]
    response = api.post("/kb/articles", json={**ARTICLE, "title": ""})
    assert response.status_code == 422 and "title" in response.json["detail"]["json"]
    assert db.session.scalar(select(func.count(KbArticle.id))) == 0


def test_agents_read_but_do_not_write(app, ctx, api):
    article = api.post("/kb/articles", json=ARTICLE).json
    agent = h.agent("agent@example.com", "Plain Agent", ["Support"])
    headers = {"Authorization": f"Bearer {h.token(agent)}"}
    client = app.test_client()
    assert client.get("/api/v1/kb/articles", headers=headers).status_code == 200
    assert client.get("/api/v1/kb/search?q=Казань", headers=headers).status_code == 200
    assert client.post("/api/v1/kb/articles", json=ARTICLE, headers=headers).status_code == 403
    assert client.patch(f"/api/v1/kb/articles/{article['id']}", json={"title": "x"},
                        headers=headers).status_code == 403
    assert client.delete(f"/api/v1/kb/articles/{article['id']}",
                         headers=headers).status_code == 403
