"""Models and Alembic migrations agree on every backend."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from app.infra.models import Base
from app.infra.state import db


def test_autogenerate_finds_no_difference(ctx, backend):
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert context.get_current_revision() is not None
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], f"models and migrations differ on {backend}: {diff}"


def test_the_word_form_migration_backfills_the_stems_of_existing_messages_in_chunks(tmp_path):
    """A database with messages from before word-form search gets their stems from the
    migration (more rows than one chunk of the backfill), and finds them by word form."""
    import sqlite3

    from alembic import command
    from alembic.config import Config as AlembicConfig
    from sqlalchemy import create_engine

    from tests.conftest import ROOT

    path = tmp_path / "old.db"
    engine = create_engine(f"sqlite:///{path}")
    cfg = AlembicConfig(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "0004")

    raw = sqlite3.connect(path)

    def insert(table, values):
        # every NOT NULL column without a default gets a plain value of its type
        row = dict(values)
        for _cid, name, kind, notnull, default, pk in raw.execute(f"PRAGMA table_info({table})"):
            if notnull and default is None and not pk and name not in row:
                row[name] = 0 if "INT" in kind.upper() or "BOOL" in kind.upper() else (
                    "2026-01-01 00:00:00" if "DATE" in kind.upper() or name.endswith("_at") else
                    "{}" if name in ("meta", "custom_fields") else "[]" if name in ("tags", "labels", "history") else "x")
        columns = ", ".join(row)
        raw.execute(f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(row))})",
                    list(row.values()))

    insert("customers", {"id": 1, "name": "Анна"})
    insert("conversations", {"id": 1, "customer_id": 1, "status": "open"})
    texts = ["Где мой заказ?", "Zamówienie nr 5 nie dotarło"] + [f"сообщение {i}" for i in range(5001)]
    for i, body in enumerate(texts, start=1):
        insert("messages", {"id": i, "uuid": f"u-{i}", "conversation_id": 1, "customer_id": 1,
                            "direction": "in", "text": body, "deleted": 0})
    raw.commit()
    raw.close()

    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")
    raw = sqlite3.connect(path)
    stems = dict(raw.execute("SELECT id, search_stems FROM messages"))
    assert stems[1] == "где мо заказ"
    assert stems[2].startswith("zamowien")
    assert stems[5003] == "сообщен 5000"           # the second chunk was reached too
    assert all(v is not None for v in stems.values())
    engine.dispose()
