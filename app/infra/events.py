"""Events for agents: written to the event log in the action's transaction and emitted on
Socket.IO only after it commits (through Redis when configured, so a worker's event reaches a
browser connected to any web process)."""
from __future__ import annotations

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
