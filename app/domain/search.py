"""Search: customers by name, email, phone, handle; messages by text (Cyrillic and Latin).

PostgreSQL: full-text search over `to_tsvector('simple', text)` with a GIN index, and
trigram indexes (pg_trgm) on lower(name) and lower(identity value) (migration 0002).

SQLite: FTS5 tables with the unicode61 tokenizer (case folding for Cyrillic too, diacritics
removed). They live in a companion database file `<database>.search` attached to every
connection as `search`, so the FTS5 shadow tables stay out of the main schema the models
describe. Rows are kept in step by a Session `after_flush` hook: every Message, Customer or
Identity written through the ORM (ingest, outbox, demo, API) is indexed in the same
transaction; a new or stale index file is rebuilt from the main tables when it is attached.
"""
from __future__ import annotations

import logging
import re

from sqlalchemy import event, func, inspect, select, text, union
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import Pool

from app.infra.models import Conversation, Customer, Identity, Message

log = logging.getLogger(__name__)
WORD = re.compile(r"\w+", re.UNICODE)

_SQLITE_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS search.messages_fts USING fts5(
    text, tokenize = 'unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE IF NOT EXISTS search.customers_fts USING fts5(
    name, handles, tokenize = 'unicode61 remove_diacritics 2');
CREATE TABLE IF NOT EXISTS search.state (k TEXT PRIMARY KEY, v TEXT);
"""


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
    previous = dbapi_connection.isolation_level
    dbapi_connection.isolation_level = None
    try:
        dbapi_connection.execute("ATTACH DATABASE ? AS search", (path + ".search",))
        dbapi_connection.execute("PRAGMA search.journal_mode=WAL")
        dbapi_connection.executescript(_SQLITE_SCHEMA)
        _rebuild_if_needed(dbapi_connection)
    except sqlite3.OperationalError as exc:
        if "no such table: main.messages" not in str(exc):  # a database not yet migrated
            log.warning("search index not available: %s", exc)
    finally:
        dbapi_connection.isolation_level = previous


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
        conn.execute("DELETE FROM search.messages_fts")
        conn.execute("DELETE FROM search.customers_fts")
        conn.execute("INSERT INTO search.messages_fts(rowid, text) "
                     "SELECT id, text FROM main.messages WHERE deleted = 0")
        conn.execute("INSERT INTO search.customers_fts(rowid, name, handles) "
                     "SELECT c.id, c.name, (SELECT group_concat(i.value, ' ') FROM main.identities i "
                     "WHERE i.customer_id = c.id) FROM main.customers c")
        conn.execute("INSERT OR REPLACE INTO search.state(k, v) VALUES ('built', '1')")
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
    if not messages and not customers:
        return
    connection = session.connection()
    try:
        for message_id, message in messages.items():
            connection.exec_driver_sql("DELETE FROM search.messages_fts WHERE rowid = ?",
                                       (message_id,))
            if message is not None and not message.deleted and message.text:
                connection.exec_driver_sql(
                    "INSERT INTO search.messages_fts(rowid, text) VALUES (?, ?)",
                    (message_id, message.text))
        for customer_id in customers:
            connection.exec_driver_sql("DELETE FROM search.customers_fts WHERE rowid = ?",
                                       (customer_id,))
            connection.exec_driver_sql(
                "INSERT INTO search.customers_fts(rowid, name, handles) "
                "SELECT c.id, c.name, (SELECT group_concat(i.value, ' ') FROM main.identities i "
                "WHERE i.customer_id = c.id) FROM main.customers c WHERE c.id = ?", (customer_id,))
    except Exception as exc:  # the index must never break a write; it is rebuilt on attach
        if "no such table: search." not in str(exc):
            raise
        log.debug("search index not attached: %s", exc)


def terms(query: str) -> list[str]:
    return [w for w in WORD.findall(query or "") if w][:8]


def _fts5_match(words: list[str]) -> str:
    # each word a quoted prefix term; double quotes cannot occur (only \w characters)
    return " ".join(f'"{w}"*' for w in words)


def _tsquery(words: list[str]) -> str:
    return " & ".join(f"{w}:*" for w in words)


def search_customers(session: Session, query: str, limit: int = 10) -> list[Customer]:
    words = terms(query)
    if not words:
        return []
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        ids = [r[0] for r in session.execute(
            text("SELECT rowid FROM search.customers_fts WHERE customers_fts MATCH :q "
                 "ORDER BY rank LIMIT :n"), {"q": _fts5_match(words), "n": limit * 3})]
        if not ids:
            return []
        rows = {c.id: c for c in session.scalars(select(Customer).where(
            Customer.id.in_(ids), Customer.merged_into_id.is_(None)))}
        return [rows[i] for i in ids if i in rows][:limit]
    stmt = select(Customer).where(Customer.merged_into_id.is_(None))
    for word in words:
        pattern = f"%{word.lower()}%"
        # a UNION of two trigram-indexed lookups: "name OR handle" as one OR made PostgreSQL
        # scan every customer (51 ms at 100,000 customers; 1 ms this way)
        stmt = stmt.where(Customer.id.in_(union(
            select(Customer.id).where(func.lower(Customer.name).like(pattern)),
            select(Identity.customer_id).where(func.lower(Identity.value).like(pattern)))))
    return list(session.scalars(stmt.order_by(Customer.updated_at.desc()).limit(limit)))


def search_messages(session: Session, query: str, channel_ids: set[int] | None,
                    limit: int = 20) -> list[Message]:
    """Newest first, only in conversations the agent may see (channel_ids None: all)."""
    words = terms(query)
    if not words:
        return []
    dialect = session.get_bind().dialect.name
    stmt = select(Message).join(Conversation, Conversation.id == Message.conversation_id)
    if channel_ids is not None:
        stmt = stmt.where(Conversation.channel_id.in_(channel_ids or [-1]))
    if dialect == "sqlite":
        ids = [r[0] for r in session.execute(
            text("SELECT rowid FROM search.messages_fts WHERE messages_fts MATCH :q "
                 "ORDER BY rowid DESC LIMIT :n"), {"q": _fts5_match(words), "n": 500})]
        if not ids:
            return []
        stmt = stmt.where(Message.id.in_(ids))
    else:
        stmt = stmt.where(text("to_tsvector('simple', messages.text) @@ "
                               "to_tsquery('simple', :tsq)").bindparams(tsq=_tsquery(words)))
    stmt = stmt.where(Message.deleted.is_(False))
    if dialect == "postgresql":
        return _newest_matches_postgres(session, stmt, limit)
    return list(session.scalars(stmt.order_by(Message.id.desc()).limit(limit)))


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


def snippet(body: str, query: str, width: int = 160) -> str:
    """A piece of `body` around the first matched word (highlighting happens in the browser)."""
    body = " ".join((body or "").split())
    lowered = body.casefold()
    positions = [lowered.find(w.casefold()) for w in terms(query)]
    positions = [p for p in positions if p >= 0]
    start = max(0, min(positions) - width // 3) if positions else 0
    piece = body[start:start + width]
    return ("…" if start else "") + piece + ("…" if start + width < len(body) else "")


