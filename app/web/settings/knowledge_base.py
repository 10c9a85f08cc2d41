"""`/settings/knowledge-base`: the knowledge base's articles (issue 18): list, add, edit with a
preview of the rendered Markdown, delete. The public side is /help (app/web/help.py)."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from app.domain import kb
from app.domain.errors import DomainError
from app.infra.models import KbArticle
from app.infra.state import db
from app.web.settings import admin_required, bp, end_read


def _reason(exc: DomainError) -> str:
    known = {
        "must not be empty": _("Required."),
        "an article needs a body or a short answer": _("Write a body or a short answer."),
        "true or false": _("Yes or no."),
    }
    if exc.message in known:
        return known[exc.message]
    if exc.message.startswith("at most"):
        return _("Too long (%(reason)s).", reason=exc.message)
    if exc.field == "language":
        return _("Choose Russian, Polish or English.")
    return exc.message


def _form() -> dict:
    form = request.form
    return {"title": form.get("title", ""), "body": form.get("body", ""),
            "short_answer": form.get("short_answer", ""), "language": form.get("language", ""),
            "category": form.get("category", ""), "keywords": form.get("keywords", ""),
            "published": form.get("published") == "on"}


def _languages() -> list[tuple[str, str]]:
    return [("ru", _("Russian")), ("pl", _("Polish")), ("en", _("English"))]


def _list(status: int = 200):
    language = request.args.get("language") or ""
    stmt = select(KbArticle).order_by(KbArticle.language, KbArticle.category, KbArticle.title)
    if language in kb.LANGUAGES:
        stmt = stmt.where(KbArticle.language == language)
    articles = list(db.session.scalars(stmt))
    end_read()
    return render_template("settings/knowledge_base.html", articles=articles, language=language,
                           languages=_languages(), section="kb"), status


def _editor(article: KbArticle | None, values: dict, errors: dict | None = None,
            preview: str | None = None, status: int = 200):
    end_read()
    return render_template("settings/kb_article.html", article=article, values=values,
                           errors=errors or {}, preview=preview, languages=_languages(),
                           section="kb"), status


def _values(article: KbArticle) -> dict:
    return {"title": article.title, "body": article.body, "short_answer": article.short_answer,
            "language": article.language, "category": article.category,
            "keywords": ", ".join(article.keywords or []), "published": article.published}


@bp.get("/knowledge-base")
@admin_required
def knowledge_base():
    return _list()


@bp.get("/knowledge-base/new")
@admin_required
def kb_new():
    return _editor(None, {"language": (current_user.locale or "ru"), "published": True})


@bp.get("/knowledge-base/<int:article_id>")
@admin_required
def kb_edit(article_id: int):
    article = db.session.get(KbArticle, article_id) or abort(404)
    return _editor(article, _values(article), preview=article.body_html)


def _save(article: KbArticle | None):
    values = _form()
    if request.form.get("action") == "preview":
        return _editor(article, values, preview=kb.render(values["body"]))
    try:
        if article is None:
            article = kb.create(db.session, values, author_id=current_user.id)
        else:
            kb.update(db.session, article, values)
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        return _editor(article if article and article.id else None, values,
                       {exc.field: _reason(exc)}, status=422)
    flash(_("Article saved."), "ok")
    return redirect(url_for("settings.kb_edit", article_id=article.id))


@bp.post("/knowledge-base/new")
@admin_required
def kb_create():
    return _save(None)


@bp.post("/knowledge-base/<int:article_id>")
@admin_required
def kb_update(article_id: int):
    return _save(db.session.get(KbArticle, article_id) or abort(404))


@bp.post("/knowledge-base/<int:article_id>/delete")
@admin_required
def kb_delete(article_id: int):
    article = db.session.get(KbArticle, article_id) or abort(404)
    db.session.delete(article)
    db.session.commit()
    flash(_("Article deleted."), "ok")
    return redirect(url_for("settings.knowledge_base"))
