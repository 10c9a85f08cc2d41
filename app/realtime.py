"""Socket.IO for agents: events are written to the event log in the action's transaction
and emitted only after it commits (through Redis when configured, so a worker's event
reaches a browser connected to any web process)."""
from __future__ import annotations

import logging
from typing import Any

from flask import request
from flask_login import current_user
from flask_socketio import disconnect, join_room
from sqlalchemy.orm import Session

from .db import after_commit
from .extensions import socketio
from .models import Event

log = logging.getLogger(__name__)
NAMESPACE = "/agents"
ADMINS_ROOM = "admins"


def channel_room(channel_id: int) -> str:
    return f"channel:{channel_id}"


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


_registered = False


def register_handlers() -> None:
    """Socket.IO handlers live on the one module-level SocketIO; register them once."""
    global _registered
    if _registered:
        return
    _registered = True
    from .access import visible_channel_ids

    @socketio.on("connect", namespace=NAMESPACE)
    def on_connect(auth=None):
        if not current_user.is_authenticated:
            return False  # refuses the connection
        channels = visible_channel_ids(current_user)
        if channels is None:
            join_room(ADMINS_ROOM)
        else:
            for channel_id in channels:
                join_room(channel_room(channel_id))
        log.debug("agent %s connected (%s)", current_user.id, request.sid)
        return True

    @socketio.on("logout", namespace=NAMESPACE)
    def on_logout():
        disconnect()


def socketio_options(config: dict) -> dict[str, Any]:
    options: dict[str, Any] = {
        # threading + simple-websocket in every mode: no monkey patching, so database drivers
        # and the in-process worker thread behave as plain threads (see README).
        "async_mode": "threading",
        "cors_allowed_origins": [],
        "logger": False,
        "engineio_logger": False,
    }
    if config["redis_url"]:
        # Flask-SocketIO's channel name; any external emitter must use the same one.
        options["message_queue"] = config["redis_url"]
        options["channel"] = "flask-socketio"
    return options


