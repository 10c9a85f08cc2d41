"""Search: customers by name, email, phone, handle; messages by text (Cyrillic and Latin).

Word forms: every message's text is also kept as its stems (`messages.search_stems`, filled
by a Session `before_flush` hook): Russian words through the Snowball Russian stemmer, Latin
words through the Snowball Polish and English stemmers (PyStemmer), lowercased, ё as е, Polish
and other Latin diacritics removed (ł as l). A query word matches a message when its stem, or
the word itself as typed, is a prefix of one of the message's stems: "заказа", "заказы" and
"заказом" all find "заказ"; "zamowienia" finds "zamówieniu"; "зака" still finds "заказ".
Phones: the digits of phone and WhatsApp handles are searched as a substring, so "916123",
"916-12" and "+7 (916) 123" find +79161234567.

PostgreSQL: full-text search over `to_tsvector('simple', search_stems)` with a GIN index
(migration 0005), trigram indexes (pg_trgm) on lower(name), lower(identity value) and the
digits of phone handles.

SQLite: FTS5 tables (stems; names and handles with the unicode61 tokenizer, case folding for
Cyrillic too, diacritics removed; phone digits with the trigram tokenizer). They live in a
companion database file `<database>.search` attached to every connection as `search`, so
the FTS5 shadow tables stay out of the main schema the models describe. Rows are kept in
step by a Session `after_flush` hook: every Message, Customer or Identity written through
the ORM (ingest, outbox, demo, API) is indexed in the same transaction; a new or stale index
file (or one of an older layout) is rebuilt from the main tables when it is attached.

Results are newest first and paginated by message id (`before`: the last id seen).
"""
from __future__ import annotations

import functools
import logging
import re
import unicodedata

from sqlalchemy import func, inspect, select, text, union
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.infra.models import Conversation, Customer, Identity, Message

log = logging.getLogger(__name__)
WORD = re.compile(r"[^\W_]+", re.UNICODE)
CYRILLIC = re.compile(r"[\u0400-\u04ff]")
LATIN_LETTERS = re.compile(r"^[^\W\d_]+$")
PHONE_QUERY = re.compile(r"^[\d\s+()\-./]+$")
PHONE_KINDS = ("phone", "whatsapp")
MIN_PHONE_DIGITS = 3
POLISH_ALTERNATIONS = (("ce", "ka"), ("rze", "ra"), ("dze", "ga"))
INDEX_LAYOUT = "2"   # the sidecar's layout: a file with another one is rebuilt

_SQLITE_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS search.messages_fts USING fts5(
    stems, tokenize = 'unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE IF NOT EXISTS search.customers_fts USING fts5(
    name, handles, tokenize = 'unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE IF NOT EXISTS search.phones_fts USING fts5(
    digits, tokenize = 'trigram');
"""


# ---- words and stems ---------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _stemmers():
    import Stemmer  # PyStemmer: Snowball in C

    return (Stemmer.Stemmer("russian"), Stemmer.Stemmer("polish"), Stemmer.Stemmer("english"))


def fold(word: str) -> str:
    """Lowercase; ё as е; Latin diacritics removed (ł as l). Cyrillic keeps й."""
    word = word.casefold().replace("ё", "е")
    if CYRILLIC.search(word):
        return word
    word = word.replace("ł", "l").replace("ø", "o").replace("ß", "ss")
    return "".join(c for c in unicodedata.normalize("NFKD", word)
                   if not unicodedata.combining(c))


@functools.lru_cache(maxsize=65536)
def word_stems(word: str) -> tuple[str, ...]:
    """The index terms of one word: its folded stem(s); digits and mixed words as they are."""
    lowered = word.casefold().replace("ё", "е")
    russian, polish, english = _stemmers()
    if CYRILLIC.search(lowered):
        return (russian.stemWord(lowered),)
    if not LATIN_LETTERS.match(lowered):
        return (fold(lowered),)
    found = [fold(polish.stemWord(lowered)), fold(english.stemWord(lowered))]
    # the Polish dative/locative alternations Snowball leaves apart: w paczce / paczka,
    # w fakturze / faktura, o drodze / droga
    for ending, nominative in POLISH_ALTERNATIONS:
        if lowered.endswith(ending) and len(lowered) > len(ending) + 2:
            found.append(fold(polish.stemWord(lowered[:-len(ending)] + nominative)))
    return tuple(dict.fromkeys(s for s in found if s))


def stems(body: str | None) -> str:
    """The text a message is searched by: each word's stems, in order, space-separated."""
    out: list[str] = []
    for word in WORD.findall(body or ""):
        out.extend(word_stems(word))
    return " ".join(out)


def terms(query: str) -> list[str]:
    return [w for w in WORD.findall(query or "") if w][:8]


def _alternatives(word: str) -> list[str]:
    """What a query word may match as a prefix: its stems and the word as typed (folded)."""
    return list(dict.fromkeys([*word_stems(word), fold(word)]))


def _fts5_match(words: list[str]) -> str:
    # each word: any of its alternatives as a quoted prefix term (only \w characters, so no
    # double quote can occur)
    return " AND ".join("(" + " OR ".join(f'"{a}"*' for a in _alternatives(w)) + ")"
                        for w in words)


def _tsquery(words: list[str]) -> str:
    return " & ".join("(" + " | ".join(f"{a}:*" for a in _alternatives(w)) + ")"
                      for w in words)


def phone_digits(query: str) -> str | None:
    """The digits of a query that looks like (a part of) a phone number, else None."""
    query = (query or "").strip()
    if not PHONE_QUERY.match(query):
        return None
    digits = re.sub(r"\D", "", query)
    return digits if len(digits) >= MIN_PHONE_DIGITS else None


def fill_stems(session: Session, _context, _instances) -> None:
    """Session before_flush: a new or edited message gets its `search_stems`."""
    for obj in list(session.new) + list(session.dirty):
        if not isinstance(obj, Message):
            continue
        if obj in session.new or inspect(obj).attrs.text.history.has_changes() \
                or obj.search_stems is None:
            obj.search_stems = stems(obj.text)


# ---- SQLite: the FTS5 sidecar ------------------------------------------------------------

def _main_path(dbapi_connection) -> str | None:
    for _seq, name, path in dbapi_connection.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return path or None
    return None


def attach_search_index(dbapi_connection, _record) -> None:
    import sqlite3

    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    path = _main_path(dbapi_connection)
    if not path:
        return
    from pathlib import Path

    from app.infra.db import create_private_file

    create_private_file(Path(path + ".search"))  # it holds message text: 600 like the database
    dbapi_connection.create_function("tl_stems", 1, stems, deterministic=True)
    dbapi_connection.create_function("tl_digits", 1, _digits, deterministic=True)
    previous = dbapi_connection.isolation_level
    dbapi_connection.isolation_level = None
    try:
        dbapi_connection.execute("ATTACH DATABASE ? AS search", (path + ".search",))
        dbapi_connection.execute("PRAGMA search.journal_mode=WAL")
        dbapi_connection.execute("CREATE TABLE IF NOT EXISTS search.state (k TEXT PRIMARY KEY, v TEXT)")
        layout = dbapi_connection.execute("SELECT v FROM search.state WHERE k='layout'").fetchone()
        if layout is None or layout[0] != INDEX_LAYOUT:
            for table in ("messages_fts", "customers_fts", "phones_fts"):
                dbapi_connection.execute(f"DROP TABLE IF EXISTS search.{table}")
            dbapi_connection.execute("DELETE FROM search.state")
        dbapi_connection.executescript(_SQLITE_SCHEMA)
        _rebuild_if_needed(dbapi_connection)
    except sqlite3.OperationalError as exc:
        if "no such table: main.messages" not in str(exc):  # a database not yet migrated
            log.warning("search index not available: %s", exc)
    finally:
        dbapi_connection.isolation_level = previous


def _digits(value: str | None) -> str:
    return re.sub(r"\D", "", value or "")


_CUSTOMER_ROW = ("SELECT c.id, c.name, (SELECT group_concat(i.value, ' ') FROM main.identities i "
                 "WHERE i.customer_id = c.id) FROM main.customers c")
_PHONE_ROW = ("SELECT i.customer_id, group_concat(tl_digits(i.value), ' ') FROM main.identities i "
              "WHERE i.kind IN ('phone', 'whatsapp')")


def _rebuild_if_needed(conn) -> None:
    """A new index file (or one left behind by an older copy of the database) is rebuilt."""
    tables = {r[0] for r in conn.execute("SELECT name FROM main.sqlite_master WHERE type='table'")}
    if "messages" not in tables:
        return
    marker = conn.execute("SELECT v FROM search.state WHERE k='built'").fetchone()
    have = conn.execute("SELECT count(*) FROM search.messages_fts").fetchone()[0]
    real = conn.execute("SELECT count(*) FROM main.messages").fetchone()[0]
    if marker is not None and have == real:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table in ("messages_fts", "customers_fts", "phones_fts"):
            conn.execute(f"DELETE FROM search.{table}")
        columns = {r[1] for r in conn.execute("PRAGMA main.table_info(messages)")}
        source = "coalesce(search_stems, tl_stems(text))" if "search_stems" in columns \
            else "tl_stems(text)"
        # every message has a row (a deleted one an empty one), so the counts compare
        conn.execute(f"INSERT INTO search.messages_fts(rowid, stems) SELECT id, CASE WHEN "
                     f"deleted = 0 THEN {source} ELSE '' END FROM main.messages")
        conn.execute(f"INSERT INTO search.customers_fts(rowid, name, handles) {_CUSTOMER_ROW}")
        conn.execute(f"INSERT INTO search.phones_fts(rowid, digits) {_PHONE_ROW} "
                     "GROUP BY i.customer_id")
        conn.execute("INSERT OR REPLACE INTO search.state(k, v) VALUES ('built', '1')")
        conn.execute("INSERT OR REPLACE INTO search.state(k, v) VALUES ('layout', ?)",
                     (INDEX_LAYOUT,))
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise


def index_changes(session: Session, _context) -> None:
    bind = session.get_bind()
    if bind.dialect.name != "sqlite":
        return
    messages: dict[int, Message | None] = {}
    customers: set[int] = set()
    for obj in list(session.new) + list(session.dirty):
        if isinstance(obj, Message) and obj.id is not None:
            state = inspect(obj)
            if obj in session.new or state.attrs.text.history.has_changes() \
                    or state.attrs.deleted.history.has_changes():
                messages[obj.id] = obj
        elif isinstance(obj, Customer) and obj.id is not None:
            customers.add(obj.id)
        elif isinstance(obj, Identity) and obj.customer_id is not None:
            customers.add(obj.customer_id)
    for obj in session.deleted:
        if isinstance(obj, Message) and obj.id is not None:
            messages[obj.id] = None
        elif isinstance(obj, Identity) and obj.customer_id is not None:
            customers.add(obj.customer_id)
    if not messages and not customers:
        return
    connection = session.connection()
    try:
        # one executemany each, whatever the number of messages (the ingest drain flushes a
        # whole batch of them at once)
        if messages:
            connection.exec_driver_sql("DELETE FROM search.messages_fts WHERE rowid = ?",
                                       [(message_id,) for message_id in messages])
        rows = [(message_id, "" if message.deleted else
                 (message.search_stems or stems(message.text)))
                for message_id, message in messages.items() if message is not None]
        if rows:
            connection.exec_driver_sql(
                "INSERT INTO search.messages_fts(rowid, stems) VALUES (?, ?)", rows)
        if customers:   # likewise one executemany per statement for the customers
            ids = [(customer_id,) for customer_id in sorted(customers)]
            connection.exec_driver_sql("DELETE FROM search.customers_fts WHERE rowid = ?", ids)
            connection.exec_driver_sql("DELETE FROM search.phones_fts WHERE rowid = ?", ids)
            connection.exec_driver_sql(
                f"INSERT INTO search.customers_fts(rowid, name, handles) {_CUSTOMER_ROW} "
                "WHERE c.id = ?", ids)
            connection.exec_driver_sql(
                f"INSERT INTO search.phones_fts(rowid, digits) {_PHONE_ROW} "
                "AND i.customer_id = ? GROUP BY i.customer_id", ids)
    except Exception as exc:  # the index must never break a write; it is rebuilt on attach
        if "no such table: search." not in str(exc) and "no such function" not in str(exc):
            raise
        log.debug("search index not attached: %s", exc)


# ---- queries -----------------------------------------------------------------------------

def search_customers(session: Session, query: str, limit: int = 10) -> list[Customer]:
    digits = phone_digits(query)
    words = terms(query)
    if not words:
        return []
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        if digits:
            # the trigram tokenizer matches a quoted string anywhere inside the digits
            ids = [r[0] for r in session.execute(
                text("SELECT rowid FROM search.phones_fts WHERE phones_fts MATCH :q "
                     "ORDER BY rowid DESC LIMIT :n"), {"q": f'"{digits}"', "n": limit * 3})]
        else:
            ids = []
        ids += [r[0] for r in session.execute(
            text("SELECT rowid FROM search.customers_fts WHERE customers_fts MATCH :q "
                 "ORDER BY rank LIMIT :n"), {"q": _fts5_match(words), "n": limit * 3})]
        ids = list(dict.fromkeys(ids))
        if not ids:
            return []
        rows = {c.id: c for c in session.scalars(select(Customer).where(
            Customer.id.in_(ids), Customer.merged_into_id.is_(None)))}
        return [rows[i] for i in ids if i in rows][:limit]
    base = select(Customer).where(Customer.merged_into_id.is_(None))
    found: list[Customer] = []
    if digits:
        # the digits of phone handles, trigram-indexed (migration 0005): any format matches
        found = list(session.scalars(base.where(Customer.id.in_(
            select(Identity.customer_id).where(
                Identity.kind.in_(PHONE_KINDS),
                func.regexp_replace(Identity.value, "[^0-9]", "", "g").like(f"%{digits}%"))))
            .order_by(Customer.updated_at.desc()).limit(limit)))
    stmt = base
    for word in words:
        pattern = f"%{word.lower()}%"
        # a UNION of two trigram-indexed lookups: "name OR handle" as one OR made PostgreSQL
        # scan every customer (51 ms at 100,000 customers; 1 ms this way)
        stmt = stmt.where(Customer.id.in_(union(
            select(Customer.id).where(func.lower(Customer.name).like(pattern)),
            select(Identity.customer_id).where(func.lower(Identity.value).like(pattern)))))
    seen = {c.id for c in found}
    found += [c for c in session.scalars(stmt.order_by(Customer.updated_at.desc()).limit(limit))
              if c.id not in seen]
    return found[:limit]


SQLITE_BATCH = 500


def search_messages(session: Session, query: str, channel_ids: set[int] | None,
                    limit: int = 20, before: int | None = None) -> list[Message]:
    """Newest first, only in conversations the agent may see (channel_ids None: all), with
    ids below `before` (the previous page's last id) when given."""
    words = terms(query)
    if not words:
        return []
    dialect = session.get_bind().dialect.name
    stmt = select(Message).join(Conversation, Conversation.id == Message.conversation_id) \
        .where(Message.deleted.is_(False))
    if channel_ids is not None:
        stmt = stmt.where(Conversation.channel_id.in_(channel_ids or [-1]))
    if dialect == "sqlite":
        return _newest_matches_sqlite(session, stmt, words, limit, before)
    if before is not None:
        stmt = stmt.where(Message.id < before)
    stmt = stmt.where(text("to_tsvector('simple', messages.search_stems) @@ "
                           "to_tsquery('simple', :tsq)").bindparams(tsq=_tsquery(words)))
    return _newest_matches_postgres(session, stmt, limit)


def _newest_matches_sqlite(session: Session, stmt, words: list[str], limit: int,
                           before: int | None) -> list[Message]:
    # FTS5 walks a term's matches in rowid order, so batches of the newest ids below the
    # last one seen cost what they return; the visibility filter runs on each batch
    found: list[Message] = []
    below = before if before is not None else 2 ** 62
    match = _fts5_match(words)
    while len(found) < limit:
        ids = [r[0] for r in session.execute(
            text("SELECT rowid FROM search.messages_fts WHERE messages_fts MATCH :q "
                 "AND rowid < :below ORDER BY rowid DESC LIMIT :n"),
            {"q": match, "below": below, "n": SQLITE_BATCH})]
        if not ids:
            break
        found += session.scalars(stmt.where(Message.id.in_(ids))
                                 .order_by(Message.id.desc()).limit(limit - len(found)))
        if len(ids) < SQLITE_BATCH:
            break
        below = ids[-1]
    return found


# PostgreSQL estimates any full-text match at 0.5% of the rows, so for "newest first" it
# walks the primary key backwards and filters as it goes: a few ms for a common word, and a
# scan of the whole table for a rare one (30 s at 2,000,000 messages, bench/README.md). The
# GIN index is the fast way to a rare word's few rows and the slow way to a common word's
# many (every match fetched, then sorted). So walk the key under a short statement timeout,
# and when the word proves rare, take the index (ordering by `id + 0` rules out the walk).
NEWEST_WALK_TIMEOUT_MS = 100


def _newest_matches_postgres(session: Session, stmt, limit: int) -> list[Message]:
    try:
        with session.begin_nested():
            session.execute(text(f"SET LOCAL statement_timeout = {NEWEST_WALK_TIMEOUT_MS}"))
            found = list(session.scalars(stmt.order_by(Message.id.desc()).limit(limit)))
            session.execute(text("SET LOCAL statement_timeout = DEFAULT"))
            return found
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != "57014":  # query_canceled
            raise
    return list(session.scalars(stmt.order_by((Message.id + 0).desc()).limit(limit)))


def matched_words(body: str, query: str) -> list[str]:
    """The words of `body` (as written) that the query matched, for highlighting."""
    wanted = [a for w in terms(query) for a in _alternatives(w)]
    if not wanted:
        return []
    out: list[str] = []
    for word in WORD.findall(body or ""):
        keys = (*word_stems(word), fold(word))
        if any(k.startswith(a) for k in keys for a in wanted):
            out.append(word)
    return list(dict.fromkeys(out))


def snippet(body: str, query: str, width: int = 160) -> str:
    """A piece of `body` around the first matched word (highlighting happens in the browser)."""
    body = " ".join((body or "").split())
    matched = matched_words(body, query) or terms(query)
    positions = [m.start() for w in matched
                 for m in [re.search(rf"(?<!\w){re.escape(w)}", body, re.IGNORECASE)] if m]
    start = max(0, min(positions) - width // 3) if positions else 0
    piece = body[start:start + width]
    return ("…" if start else "") + piece + ("…" if start + width < len(body) else "")
