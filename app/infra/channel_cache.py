"""Channels as the webhook door needs them, cached in the process (issue 15: no ORM object
loading per acknowledged webhook).

A cached channel is a plain snapshot (id, kind, active, settings), read with one Core
SELECT and reused until either
- this process commits (or rolls back, or flushes) a change to any channel: the session
  listeners below bump a process-wide generation, and every entry of an older generation
  is read again (an admin's edit, `threadline channels ...` in this process, a test); or
- it is older than `TTL` seconds: a change committed by another process (a second web
  process, the CLI) is seen within that time.

The cache belongs to one `Database` (tests build a new database per test: ids repeat).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.infra.models import Channel

TTL = 1.0   # seconds a snapshot is trusted without a local change

_generation = 0
_generation_lock = threading.Lock()
_FLAG = "channel_cache.changed"


@dataclass(frozen=True)
class ChannelSnapshot:
    """What a webhook reads of its channel; `settings` is this snapshot's own copy (do not
    change it: it is shared by the requests of this process)."""

    id: int
    kind: str
    active: bool
    settings: dict[str, Any]


def bump() -> None:
    global _generation
    with _generation_lock:
        _generation += 1


class ChannelCache:
    def __init__(self) -> None:
        self._entries: dict[Any, tuple[int, float, Any]] = {}

    def _fresh(self, key: Any) -> Any:
        entry = self._entries.get(key)
        if entry is not None and entry[0] == _generation and time.monotonic() - entry[1] < TTL:
            return entry[2]
        return _MISSING

    def _store(self, key: Any, generation: int, value: Any) -> None:
        if generation == _generation:   # no change committed while it was read
            self._entries[key] = (generation, time.monotonic(), value)

    def get(self, session: Session, channel_id: int) -> ChannelSnapshot | None:
        value = self._fresh(channel_id)
        if value is _MISSING:
            generation = _generation
            row = session.connection().execute(
                select(Channel.id, Channel.kind, Channel.active, Channel.settings)
                .where(Channel.id == channel_id)).first()
            if row is None:
                return None   # not cached: ids nobody has cannot fill the process's memory
            value = _snapshot(row)
            self._store(channel_id, generation, value)
        return value

    def active_of_kind(self, session: Session, kind: str) -> tuple[ChannelSnapshot, ...]:
        key = ("active", kind)
        value = self._fresh(key)
        if value is _MISSING:
            generation = _generation
            rows = session.connection().execute(
                select(Channel.id, Channel.kind, Channel.active, Channel.settings)
                .where(Channel.kind == kind, Channel.active.is_(True))
                .order_by(Channel.id)).all()
            value = tuple(_snapshot(row) for row in rows)
            self._store(key, generation, value)
        return value


_MISSING = object()


def _snapshot(row) -> ChannelSnapshot:
    return ChannelSnapshot(int(row.id), row.kind, bool(row.active), dict(row.settings or {}))


def cache_for(database) -> ChannelCache:
    database = getattr(database, "_get_current_object", lambda: database)()  # the db proxy
    cache = getattr(database, "_channel_cache", None)
    if cache is None:
        cache = database._channel_cache = ChannelCache()
    return cache


# --- session listeners (wired in app/wiring.py) -------------------------------------------

def note_changes(session: Session, _flush_context) -> None:
    """after_flush: a channel written in this transaction makes every snapshot stale now
    (this session reads its own writes) and again when the transaction ends."""
    if any(isinstance(o, Channel) for o in (*session.new, *session.dirty, *session.deleted)):
        session.info[_FLAG] = True
        bump()


def note_bulk_changes(orm_execute_state) -> None:
    """do_orm_execute: an UPDATE or DELETE statement on channels (no objects flushed)."""
    if (orm_execute_state.is_update or orm_execute_state.is_delete) \
            and any(getattr(m, "class_", None) is Channel
                    for m in orm_execute_state.all_mappers):
        orm_execute_state.session.info[_FLAG] = True
        bump()


def end_of_transaction(session: Session) -> None:
    """after_commit / after_rollback."""
    if session.info.pop(_FLAG, False):
        bump()
