"""A reader of the committed event log (app.infra.events.record_event): what the rules engine
(app.usecases.automation), the outside bots (app.usecases.bots) and the campaigns' reactions
(app.usecases.campaigns) share. Each reader has its own row in `automation_cursor` and its
own job; it never runs inside the transaction that made an event.

- Woken after a commit that logged an event it wants (`wake_after_commit`, an after_flush
  listener, with `clear_wake` on after_commit/after_rollback: wired in app/wiring.py).
- One runner at a time: the cursor row is locked (FOR UPDATE on PostgreSQL; SQLite's
  BEGIN IMMEDIATE). Event ids are taken before commit, so on PostgreSQL a later id may
  commit first: ids past a gap are remembered as done and the gap is waited for
  (GAP_TIMEOUT) before it is taken to be a rolled-back transaction.
- A batch is read set-wise: `prepare(session, events)` loads what its wanted events need
  with one query per kind (held in the session for the batch), then the events are handled
  in order inside one savepoint. If one of them fails, that savepoint is rolled back and
  the batch's events are handled again each in its own savepoint, as one by one: a failing
  event is logged and skipped, never read again, and never stops the events after it.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Callable, Iterable

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.infra.db import after_commit
from app.infra.models import AutomationCursor, Event, utcnow
from app.infra.state import queue

log = logging.getLogger(__name__)

GAP_TIMEOUT = timedelta(seconds=30)
MAX_BATCHES = 50


def _every(_event: Event) -> bool:
    return True


class EventReader:
    """`name`: the cursor row; `job`: the job woken after commit; `wanted(event)`: the events
    that wake it and are handed to it (the others are only read past); `what`: how the logs
    call it; `logger`: the owning module's logger."""

    def __init__(self, name: str, job: str, wanted: Callable[[Event], bool] = _every, *,
                 what: str | None = None, logger: logging.Logger | None = None) -> None:
        self.name, self.job, self.wanted = name, job, wanted
        self.what = what or name
        self.log = logger or log
        self.wake_key = f"event_reader.{name}.wake"

    # --- session listeners (wired in app/wiring.py) ------------------------------------

    def wake_after_commit(self, session: Session, _flush_context) -> None:
        """after_flush: a transaction that logged a wanted event wakes the job after commit."""
        if session.info.get(self.wake_key) or not any(
                isinstance(o, Event) and self.wanted(o) for o in session.new):
            return
        session.info[self.wake_key] = True
        after_commit(session, self.wake)

    def clear_wake(self, session: Session) -> None:
        session.info.pop(self.wake_key, None)

    def wake(self) -> None:
        from flask import has_app_context

        if not has_app_context():
            return
        try:
            queue.wake(self.job)
        except Exception:  # the sweep runs it later
            self.log.exception("could not wake %s", self.what)

    # --- the cursor ----------------------------------------------------------------------

    def cursor(self, session: Session) -> AutomationCursor:
        """The reader's cursor row, locked (created on first use, safe against a race)."""
        stmt = select(AutomationCursor).where(AutomationCursor.name == self.name)
        if session.bind.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        cursor = session.scalar(stmt)
        if cursor is not None:
            return cursor
        try:
            with session.begin_nested():
                session.add(AutomationCursor(name=self.name, position=0, done=[]))
        except IntegrityError:
            pass
        return session.scalar(stmt)

    def skip_history(self, session: Session) -> None:
        """Move the cursor past every event logged so far (demo data is not news)."""
        cursor = self.cursor(session)
        cursor.position = max(cursor.position, session.scalar(select(func.max(Event.id))) or 0)
        cursor.done = [i for i in cursor.done or [] if i > cursor.position]

    # --- the runner ----------------------------------------------------------------------

    def run(self, session: Session, handle: Callable[[Session, Event], Any], batch_size: int,
            *, kinds: Iterable[str] | None = None,
            after_event: Callable[[Session, Event, Any], None] | None = None,
            before_commit: Callable[[Session], None] | None = None,
            prepare: Callable[[Session, list[Event]], Any] | None = None,
            max_batches: int = MAX_BATCHES) -> int:
        """The job's body: every committed event past the cursor, in batches of `batch_size`
        (one transaction each). `prepare(session, events)` first loads what the batch's
        wanted events need (what it returns is held until the batch ends); then
        `handle(session, event)` runs for each wanted event, all in one savepoint, or, when
        one fails, each in its own savepoint; `after_event(session, event, result)` after
        it, once its savepoint is released (result None if it failed); `before_commit(session)`
        before each batch commits. With `kinds`, only events of those types are read (up to
        the newest id seen when the batch starts; the others up to there are done too).
        Returns how many events were read."""
        try:
            queue.awake(self.job)
        except Exception:
            self.log.exception("awake failed")
        kinds = tuple(kinds) if kinds is not None else None
        total = 0
        for _ in range(max_batches):
            read, full = self._batch(session, handle, batch_size, kinds, after_event,
                                     before_commit, prepare)
            total += read
            if not full:
                break
        return total

    def _batch(self, session, handle, batch_size, kinds, after_event,
               before_commit, prepare=None) -> tuple[int, bool]:
        cursor = self.cursor(session)
        done = set(cursor.done or [])
        stmt = select(Event).where(Event.id > cursor.position)
        newest = 0
        if kinds is not None:
            # the newest id first: what commits after this look is for the next one
            newest = session.scalar(select(Event.id).order_by(Event.id.desc()).limit(1)) or 0
            stmt = stmt.where(Event.id <= newest, Event.type.in_(kinds))
        if done:   # past a gap: what is done already is not read again
            stmt = stmt.where(Event.id.not_in(sorted(done)))
        events = list(session.scalars(stmt.order_by(Event.id).limit(batch_size)))
        full = len(events) == batch_size
        done.update(event.id for event in events)
        wanted = [event for event in events if self.wanted(event)]
        held = prepare(session, wanted) if prepare is not None and wanted else None
        results = self._together(session, handle, wanted) if wanted else []
        if results is None:   # one of them failed: each in its own savepoint, as one by one
            for event in wanted:
                self._alone(session, handle, event, after_event)
        elif after_event is not None:
            for event, result in zip(wanted, results):
                after_event(session, event, result)
        del held
        if kinds is not None:
            if full:
                newest = events[-1].id
            # events of other kinds are nothing to this reader: done too (ids not yet
            # committed are waited for like any other)
            done.update(session.scalars(select(Event.id).where(
                Event.id > cursor.position, Event.id <= newest, Event.type.not_in(kinds))))
        advance(cursor, done)
        if before_commit is not None:
            before_commit(session)
        session.commit()
        return len(events), full


    def _together(self, session: Session, handle, events: list[Event]) -> list[Any] | None:
        """Every event of the batch in one savepoint; None (all rolled back, with what they
        meant to publish after commit) if one of them failed."""
        callbacks = session.info.get("after_commit")
        published = len(callbacks) if callbacks is not None else 0
        results = []
        try:
            with session.begin_nested():
                for event in events:
                    results.append(handle(session, event))
        except Exception:
            self.log.info("%s: a batch of %d events failed together; one by one now",
                          self.what, len(events), exc_info=True)
            callbacks = session.info.get("after_commit")
            if callbacks is not None:
                del callbacks[published:]
            return None
        return results

    def _alone(self, session: Session, handle, event: Event, after_event) -> None:
        result = None
        try:
            with session.begin_nested():
                result = handle(session, event)
        except Exception:
            self.log.exception("%s on event %s (%s) failed", self.what, event.id,
                               event.type)
        finally:
            if after_event is not None:
                after_event(session, event, result)


def advance(cursor: AutomationCursor, done: set[int]) -> None:
    """Move the cursor over the ids done without a gap; past a gap, keep the ids done and
    wait GAP_TIMEOUT for the missing ones before taking them to be rolled back."""
    position = cursor.position
    while done:
        while position + 1 in done:
            position += 1
            done.discard(position)
        if not done:
            cursor.gap_seen_at = None
            break
        now = utcnow()
        if cursor.gap_seen_at is None:
            cursor.gap_seen_at = now
            break
        if now - cursor.gap_seen_at < GAP_TIMEOUT:
            break
        position = min(done) - 1   # the missing ids were rolled back: skip them
        cursor.gap_seen_at = None
    cursor.position = position
    cursor.done = sorted(done)
