"""Events for agents: written to the event log in the action's transaction and emitted on
Socket.IO only after it commits (through Redis when configured, so a worker's event reaches a
browser connected to any web process)."""
from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

from sqlalchemy.orm import Session

from app.infra.db import after_commit
from app.infra.extensions import socketio
from app.infra.models import Event

NAMESPACE = "/agents"
ADMINS_ROOM = "admins"


def channel_room(channel_id: int) -> str:
    return f"channel:{channel_id}"


def agent_room(agent_id: int) -> str:
    return f"agent:{agent_id}"


def conversation_room(conversation_id: int) -> str:
    return f"conversation:{conversation_id}"


def notify_agent(agent_id: int, type_: str, payload: dict[str, Any]) -> None:
    """A personal notification (an @mention): to the agent's own browsers, not logged."""
    if socketio.server is None:
        return
    socketio.emit(type_, {"type": type_, "data": payload}, namespace=NAMESPACE,
                  to=agent_room(agent_id))


def end_agent_sockets(agent_id: int) -> None:
    """Disconnect every open /agents socket of the agent, in every web process: closing the
    agent's room is published on the message queue, and each process's client manager
    (app.web.sockets) disconnects its own members of an `agent:<id>` room before closing it."""
    if socketio.server is None:
        return
    socketio.close_room(agent_room(agent_id), namespace=NAMESPACE)


def record_event(session: Session, type_: str, payload: dict[str, Any],
                 channel_id: int | None) -> Event:
    """Add the event to the log in the current transaction; emit it after commit."""
    event = Event(type=type_, payload=payload, channel_id=channel_id)
    session.add(event)
    after_commit(session, lambda: emit_event(event))
    return event


def record_events(session: Session, events: list[tuple[str, dict[str, Any], int | None]]) -> None:
    """Many events (type, payload, channel id) with one INSERT (executemany, the ids
    returned), emitted after commit. Unlike `record_event` they are not objects of the
    session: its flush listeners (outgoing webhooks, the readers' wake-ups) never see them,
    so this is only for events none of those acts on (a send's message.updated)."""
    if not events:
        return
    table = Event.__table__
    rows = [{"type": t, "payload": p, "channel_id": c} for t, p, c in events]
    ids = session.execute(table.insert().returning(table.c.id, sort_by_parameter_order=True),
                          rows).scalars().all()
    logged = [SimpleNamespace(id=i, **r) for i, r in zip(ids, rows)]
    after_commit(session, lambda: emit_events(logged))


def emit_events(events: list) -> None:
    """Emit several events; through Redis, their publishes go out in one pipeline (one
    round trip) instead of one round trip each."""
    manager = getattr(socketio.server, "manager", None)
    if len(events) < 2 or not _can_batch(manager):
        for event in events:
            emit_event(event)
        return
    _BATCH.messages = messages = []
    try:
        for event in events:
            emit_event(event)
    finally:
        _BATCH.messages = None
    try:
        if not manager.connected:
            manager._redis_connect()
        pipe = manager.redis.pipeline(transaction=False)
        for message in messages:
            pipe.publish(manager.channel, manager.json.dumps(message))
        pipe.execute()
    except Exception:   # the manager's own publish, one by one: it reconnects and retries
        manager.connected = False
        for message in messages:
            manager._threadline_publish(message)


# python-socketio's RedisManager publishes each emit (`_publish`: one Redis round trip);
# while `emit_events` runs on a thread, that thread's publishes are collected instead
_BATCH = threading.local()


def _can_batch(manager) -> bool:
    try:
        from socketio import RedisManager
    except ImportError:   # pragma: no cover
        return False
    if not isinstance(manager, RedisManager) or not all(
            hasattr(manager, a) for a in ("redis", "channel", "json", "connected",
                                          "_publish", "_redis_connect")):
        return False
    if getattr(manager, "_threadline_publish", None) is None:
        original = manager._publish

        def publish(message):
            collected = getattr(_BATCH, "messages", None)
            if collected is None:
                return original(message)
            collected.append(message)

        manager._threadline_publish = original
        manager._publish = publish
    return True


def emit_event(event: Event) -> None:
    if socketio.server is None:  # CLI without a server and without Redis: nobody listens
        return
    rooms = [ADMINS_ROOM] + ([channel_room(event.channel_id)] if event.channel_id else [])
    socketio.emit(event.type, {"id": event.id, "type": event.type, "data": event.payload},
                  namespace=NAMESPACE, to=rooms)


# called after a commit that added, changed or removed a channel (wired in app.wiring: the
# pollers look again at once)
CHANNEL_HOOKS: list = []


def channels_changed(session: Session) -> None:
    def run() -> None:
        for hook in CHANNEL_HOOKS:
            hook()
    after_commit(session, run)
