"""Keyset pagination, the same for every list: `{"items": [...], "next_cursor": ...}`, one
row more fetched than asked to know whether a next page exists; a cursor we did not issue
answers 422 on `cursor`."""
from __future__ import annotations

from typing import Any, Callable, NoReturn

from apiflask import abort
from sqlalchemy import Select

from app.infra.state import db


def bad_cursor() -> NoReturn:
    abort(422, "invalid cursor", detail={"query": {"cursor": ["not a cursor we issued"]}})


def id_cursor(cursor: str) -> int:
    """A cursor that is a row id (the lists ordered by id)."""
    if not cursor.isdigit():
        bad_cursor()
    return int(cursor)


def page(stmt: Select, limit: int,
         cursor_of: Callable[[Any], str] = lambda row: str(row.id)) -> dict[str, Any]:
    """Run the ordered `stmt` for one page of `limit` rows."""
    rows = list(db.session.scalars(stmt.limit(limit + 1)))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = cursor_of(rows[-1])
    return {"items": rows, "next_cursor": next_cursor}
