"""`/help`: the public help pages (no login), one per language: the knowledge base's published
articles by category, a search box (the same search as the bot's), article pages. The page
speaks the language of its articles."""
from __future__ import annotations

from itertools import groupby

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_babel import force_locale
from sqlalchemy import select

from app.domain import kb
from app.infra.extensions import limiter
from app.infra.models import KbArticle
from app.infra.state import db

bp = Blueprint("help", __name__, url_prefix="/help")
NAMES = {"ru": "Русский", "pl": "Polski", "en": "English"}


def _render(language: str, template: str, **values):
    db.session.commit()   # SQLite: the read ends before rendering
    with force_locale(language):
        return render_template(template, language=language, names=NAMES, **values)


@bp.get("")
@bp.get("/")
def index():
    language = request.accept_languages.best_match(list(kb.LANGUAGES)) or "en"
    return redirect(url_for("help.language_index", language=language))


@bp.get("/<language>")
@limiter.limit("120/minute")
def language_index(language: str):
    if language not in kb.LANGUAGES:
        abort(404)
    query = request.args.get("q", "")[:300].strip()
    if query:
        hits = kb.search(db.session, query, language, limit=10)
        return _render(language, "help/index.html", query=query, hits=hits, groups=[])
    articles = list(db.session.scalars(
        select(KbArticle).where(KbArticle.language == language, KbArticle.published.is_(True))
        .order_by(KbArticle.category, KbArticle.title)))
    groups = [(category, list(items)) for category, items in
              groupby(articles, key=lambda a: a.category or "")]
    return _render(language, "help/index.html", query="", hits=None, groups=groups)


@bp.get("/<language>/<int:article_id>")
@limiter.limit("240/minute")
def article(language: str, article_id: int):
    found = db.session.get(KbArticle, article_id)
    if found is None or not found.published:
        abort(404)
    if found.language != language:
        return redirect(url_for("help.article", language=found.language, article_id=found.id))
    return _render(language, "help/article.html", article=found)
