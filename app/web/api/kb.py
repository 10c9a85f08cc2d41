"""/api/v1/kb: the knowledge base's articles (admins write) and its search (issue 18)."""
from __future__ import annotations

from apiflask import abort
from flask import request
from sqlalchemy import select

from app.domain import kb
from app.infra.models import KbArticle
from app.infra.state import db
from app.web.api import bp, current_agent, require_admin, token_auth
from app.web.api.paging import id_cursor


def _body():
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        abort(422, "a JSON object is required", detail={"json": {"_schema": ["a JSON object"]}})
    return data


def _limit(default: int = 50, most: int = 200) -> int:
    raw = request.args.get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        abort(422, "invalid limit", detail={"query": {"limit": [f"a number 1..{most}"]}})
    return int(raw)


def _language(required: bool = False) -> str | None:
    language = request.args.get("language") or None
    if language is not None and language not in kb.LANGUAGES:
        abort(422, "invalid language",
              detail={"query": {"language": [f"one of {', '.join(kb.LANGUAGES)}"]}})
    return language


@bp.get("/kb/articles")
@bp.auth_required(token_auth)
@bp.doc(summary="Knowledge base articles, newest id first (?language=, ?published=true|false, "
                "?category=, ?cursor=, ?limit=)")
def list_kb_articles():
    stmt = select(KbArticle).order_by(KbArticle.id.desc())
    language = _language()
    if language:
        stmt = stmt.where(KbArticle.language == language)
    published = request.args.get("published")
    if published is not None:
        if published not in ("true", "false"):
            abort(422, "invalid published", detail={"query": {"published": ["true or false"]}})
        stmt = stmt.where(KbArticle.published.is_(published == "true"))
    if request.args.get("category"):
        stmt = stmt.where(KbArticle.category == request.args["category"])
    if request.args.get("cursor"):
        stmt = stmt.where(KbArticle.id < id_cursor(request.args["cursor"]))
    limit = _limit()
    rows = list(db.session.scalars(stmt.limit(limit + 1)))
    next_cursor = str(rows[limit - 1].id) if len(rows) > limit else None
    return {"items": [kb.as_dict(a) for a in rows[:limit]], "next_cursor": next_cursor}


@bp.post("/kb/articles")
@bp.auth_required(token_auth)
@bp.doc(summary="Add an article {title, body (Markdown), short_answer, language: ru|pl|en, "
                "category, keywords, published} (admins)")
def create_kb_article():
    agent = require_admin()
    article = kb.create(db.session, _body(), author_id=agent.id)
    db.session.commit()
    return kb.as_dict(article), 201


@bp.get("/kb/articles/<int:article_id>")
@bp.auth_required(token_auth)
def get_kb_article(article_id: int):
    return kb.as_dict(kb.get(db.session, article_id))


@bp.patch("/kb/articles/<int:article_id>")
@bp.auth_required(token_auth)
@bp.doc(summary="Change an article (admins); only the fields given")
def patch_kb_article(article_id: int):
    require_admin()
    article = kb.update(db.session, kb.get(db.session, article_id), _body())
    db.session.commit()
    return kb.as_dict(article)


@bp.delete("/kb/articles/<int:article_id>")
@bp.auth_required(token_auth)
def delete_kb_article(article_id: int):
    require_admin()
    db.session.delete(kb.get(db.session, article_id))
    db.session.commit()
    return "", 204


@bp.get("/kb/search")
@bp.auth_required(token_auth)
@bp.doc(summary="Search published articles by a question (?q=, ?language=): best first, each "
                "with its score and confidence (0..1); Russian and Polish word forms match")
def search_kb():
    query = request.args.get("q", "")
    if len(query) > 1000:
        abort(422, "q too long", detail={"query": {"q": ["at most 1000 characters"]}})
    hits = kb.search(db.session, query, _language(), limit=_limit(10, 50))
    current_agent()
    return {"items": [{**kb.as_dict(h.article), "score": h.score, "confidence": h.confidence,
                       "answers": h.confidence >= kb.ANSWER_THRESHOLD} for h in hits],
            "next_cursor": None}
