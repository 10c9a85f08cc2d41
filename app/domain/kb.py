"""The knowledge base (issue 18): articles, their checks and rendering, and search.

- Body: Markdown rendered with markdown-it-py (CommonMark, tables), then sanitized with nh3
  (no script, no event handler, no javascript: link; links get rel="noopener noreferrer").
- Search: the same word forms as message search (app.domain.search: Snowball Russian,
  Polish and English stems, folded, a query word matching as a prefix of a stem), ranked
  by where a word matches (title and keywords weigh most, then the short answer, then the
  body) and how rare the word is among the articles of the language. Each hit carries a
  `confidence` in 0..1: the share of the question's (rarity-weighted) words the article
  answers, what the answer bot compares with its threshold.
"""
from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Any

import nh3
from markdown_it import MarkdownIt
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.errors import DomainError, NotFound
from app.domain.search import CYRILLIC, WORD, fold, stems, word_stems
from app.infra.models import KbArticle, utcnow

LANGUAGES = ("ru", "pl", "en")
MAX_TITLE = 300
MAX_BODY = 100_000
MAX_SHORT = 1000
MAX_CATEGORY = 100
MAX_KEYWORDS = 30
MAX_QUERY_WORDS = 24
# where a query word matched: how much it says about the article
# a hit at least this confident answers the question (measured on tests/domain/kb_corpus.py:
# precision 0.98, recall 0.92 at 0.4); the answer bot answers only above it
ANSWER_THRESHOLD = 0.4
WEIGHTS = {"title": 3.0, "keywords": 3.0, "short": 1.5, "body": 1.0}
TOP_WEIGHT = 3.0

# words that ask, greet or glue; they say nothing about which article answers
STOPWORDS = set("""
а без бы в вам вас ваш ваша ваше вы где да для до добрый день если есть же за здравствуйте
и из или как какая какие каким какой когда кто ли мне можно мой моя мою мы на надо нам нас
не нет но ну о об от по подскажите пожалуйста почему при привет про с свой со спасибо так
там то тоже у уже хочу хотел хотела что чтобы это этот эта я ли сколько ещё еще очень вот
бы мой моего моей меня мне скажите вопрос
a aby albo ale bo by czy dla do dzien dobry gdzie i ile jak jaka jaki jakie jest jestem
już juz ktora ktory mam mi mnie moge mogę moj mój moja może moze na nie o od po pytanie
prosze proszę sie się to tu w we z za ze że czesc cześć witam dziekuje dziękuję co kiedy
jesli jeśli mój moje moim mojego jakiś jakis
the a an and are be can do does how i is it me my of on or please the to what when where
which why with you your hello hi thanks there am was will would could should
могу может можете найти смотреть течение его её их который которая хотим нужно нужен
идёт идет через куда можно zrobić zrobic robić robic można mozna
сделать делать быть был была было будет ваши наш наша ли либо ваш всё все весь
chce chcę chciałbym chcialbym mogę możecie mozecie jakiej jaką jaka ile ilu czy się
""".split())


@functools.lru_cache(maxsize=1)
def _stop_stems() -> frozenset[str]:
    return frozenset(s for word in STOPWORDS for s in word_stems(word))


def is_stopword(word: str) -> bool:
    folded = fold(word)
    return folded in STOPWORDS or len(folded) < 2 or \
        all(s in _stop_stems() for s in word_stems(word))

_md = MarkdownIt("commonmark", {"html": True, "linkify": False, "typographer": False}) \
    .enable("table").enable("strikethrough")

_ALLOWED_TAGS = {"p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "b", "i",
                 "u", "s", "del", "code", "pre", "blockquote", "ul", "ol", "li", "a", "img",
                 "table", "thead", "tbody", "tr", "th", "td"}
_ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"},
                       "th": {"align"}, "td": {"align"}, "ol": {"start"}}


def render(markdown: str) -> str:
    """Markdown -> sanitized HTML (scripts, event handlers, javascript: URLs removed)."""
    return nh3.clean(_md.render(markdown or ""), tags=_ALLOWED_TAGS,
                     attributes=_ALLOWED_ATTRIBUTES, url_schemes={"http", "https", "mailto"},
                     link_rel="noopener noreferrer")


# --- checks and writes --------------------------------------------------------------------

def _text(data: dict[str, Any], key: str, limit: int, required: bool = False) -> str:
    value = data.get(key)
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise DomainError(key, "must be a string")
    value = value.strip()
    if required and not value:
        raise DomainError(key, "must not be empty")
    if len(value) > limit:
        raise DomainError(key, f"at most {limit} characters")
    return value


def check(data: Any, article: KbArticle | None = None) -> dict[str, Any]:
    """The fields of a new article (article None) or of a change: {field: value}, or a
    DomainError naming the field and why. Unknown fields are refused too."""
    if not isinstance(data, dict):
        raise DomainError("_schema", "a JSON object is required")
    known = {"title", "body", "short_answer", "language", "category", "keywords", "published"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise DomainError(unknown[0], "unknown field")
    clean: dict[str, Any] = {}
    creating = article is None
    if creating or "title" in data:
        clean["title"] = _text(data, "title", MAX_TITLE, required=True)
    if creating or "body" in data:
        clean["body"] = _text(data, "body", MAX_BODY)
    if creating or "short_answer" in data:
        clean["short_answer"] = _text(data, "short_answer", MAX_SHORT)
    if creating or "category" in data:
        clean["category"] = _text(data, "category", MAX_CATEGORY)
    if creating or "language" in data:
        language = data.get("language")
        if language not in LANGUAGES:
            raise DomainError("language", f"one of {', '.join(LANGUAGES)}")
        clean["language"] = language
    if "keywords" in data or creating:
        keywords = data.get("keywords") or []
        if isinstance(keywords, str):
            keywords = [k for k in re.split(r"[,;\n]", keywords)]
        if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
            raise DomainError("keywords", "a list of words (or a comma-separated string)")
        keywords = list(dict.fromkeys(k.strip()[:100] for k in keywords if k.strip()))
        if len(keywords) > MAX_KEYWORDS:
            raise DomainError("keywords", f"at most {MAX_KEYWORDS} keywords")
        clean["keywords"] = keywords
    if "published" in data or creating:
        published = data.get("published", False)
        if not isinstance(published, bool):
            raise DomainError("published", "true or false")
        clean["published"] = published
    body = clean.get("body", article.body if article else "")
    short = clean.get("short_answer", article.short_answer if article else "")
    if not body and not short:
        raise DomainError("body" if "body" in clean or creating else "short_answer",
                          "an article needs a body or a short answer")
    return clean


def _refresh(article: KbArticle) -> None:
    article.body_html = render(article.body)
    article.search_stems = stems(" ".join([article.title, " ".join(article.keywords or []),
                                           article.short_answer, article.body]))


def create(session: Session, data: Any, author_id: int | None = None) -> KbArticle:
    article = KbArticle(**check(data), created_by_id=author_id, created_at=utcnow(),
                        updated_at=utcnow())
    _refresh(article)
    session.add(article)
    session.flush()
    return article


def update(session: Session, article: KbArticle, data: Any) -> KbArticle:
    for key, value in check(data, article).items():
        setattr(article, key, value)
    article.updated_at = utcnow()
    _refresh(article)
    session.flush()
    return article


def get(session: Session, article_id: int) -> KbArticle:
    article = session.get(KbArticle, article_id)
    if article is None:
        raise NotFound("id", f"no article {article_id}")
    return article


def summary(article: KbArticle) -> str:
    """The short answer, else the body's first paragraph as plain text."""
    if article.short_answer:
        return article.short_answer
    first = (article.body or "").strip().split("\n\n")[0]
    return re.sub(r"[#*_`>\[\]]|\(https?://[^)]*\)", "", first).strip()[:MAX_SHORT]


def as_dict(article: KbArticle) -> dict[str, Any]:
    return {"id": article.id, "title": article.title, "body": article.body,
            "body_html": article.body_html, "short_answer": article.short_answer,
            "language": article.language, "category": article.category,
            "keywords": list(article.keywords or []), "published": article.published,
            "url": help_path(article),
            "created_at": article.created_at.isoformat(),
            "updated_at": article.updated_at.isoformat()}


def help_path(article: KbArticle) -> str:
    return f"/help/{article.language}/{article.id}"


# --- language -----------------------------------------------------------------------------

_POLISH_LETTERS = re.compile(r"[ąćęłńóśźż]", re.IGNORECASE)
_POLISH_WORDS = {"jak", "czy", "gdzie", "ile", "nie", "jest", "moje", "mam", "zamowienie",
                 "dostawa", "prosze", "dzien", "dobry", "kiedy", "moge", "sie", "zwrot", "paczka"}


def detect_language(text: str) -> str | None:
    """ru for Cyrillic, pl for Polish letters or words, en for other Latin text, else None."""
    if CYRILLIC.search(text or ""):
        return "ru"
    words = [fold(w) for w in WORD.findall(text or "") if not w.isdigit()]
    if not words:
        return None
    if _POLISH_LETTERS.search(text) or any(w in _POLISH_WORDS for w in words):
        return "pl"
    return "en"


# --- search -------------------------------------------------------------------------------

@dataclass
class Hit:
    article: KbArticle
    score: float
    confidence: float


def query_words(query: str) -> list[tuple[str, ...]]:
    """Each meaningful word of a question as its alternatives (stems and the folded word)."""
    out: list[tuple[str, ...]] = []
    for word in WORD.findall(query or "")[:MAX_QUERY_WORDS]:
        folded = fold(word)
        if is_stopword(word):
            continue
        alternatives = tuple(dict.fromkeys(a for a in (*word_stems(word), folded) if a))
        if alternatives and alternatives not in out:
            out.append(alternatives)
    return out


def _fields(article: KbArticle) -> dict[str, set[str]]:
    return {"title": set(stems(article.title).split()),
            "keywords": set(stems(" ".join(article.keywords or [])).split()),
            "short": set(stems(article.short_answer).split()),
            "body": set(stems(article.body).split())}


def _matches(alternatives: tuple[str, ...], tokens: set[str]) -> bool:
    for alt in alternatives:
        if alt in tokens:
            return True
        if len(alt) >= 4 and any(t.startswith(alt) for t in tokens):
            return True
    return False


def search(session: Session, query: str, language: str | None = None, limit: int = 10,
           published_only: bool = True) -> list[Hit]:
    """Articles answering `query`, best first (only those matching at least one word)."""
    words = query_words(query)
    if not words:
        return []
    stmt = select(KbArticle)
    if language:
        stmt = stmt.where(KbArticle.language == language)
    if published_only:
        stmt = stmt.where(KbArticle.published.is_(True))
    articles = list(session.scalars(stmt.order_by(KbArticle.id)))
    if not articles:
        return []
    fields = {a.id: _fields(a) for a in articles}
    # best field weight of each word in each article
    weight: dict[int, list[float]] = {}
    df = [0] * len(words)
    for article in articles:
        row = []
        for index, alternatives in enumerate(words):
            best = max((WEIGHTS[name] for name, tokens in fields[article.id].items()
                        if _matches(alternatives, tokens)), default=0.0)
            if best:
                df[index] += 1
            row.append(best)
        weight[article.id] = row
    n = len(articles)
    # a word no article has (a typo, a topic the knowledge base does not cover) counts as
    # much as the rarest known word: "погода в Казани" is not answered by the Kazan article
    idf = [math.log(1 + n / d) if d else 1.0 * math.log(1 + n) for d in df]
    total = sum(idf) or 1.0
    hits = []
    for article in articles:
        row = weight[article.id]
        if not any(row):
            continue
        score = sum(w * i for w, i in zip(row, idf))
        confidence = sum(min(w, TOP_WEIGHT) / TOP_WEIGHT * i for w, i in zip(row, idf)) / total
        hits.append(Hit(article, round(score, 4), round(confidence, 4)))
    hits.sort(key=lambda h: (-h.score, -h.confidence, h.article.id))
    return hits[:limit]
