"""Socket.IO handlers for agents (`/agents`): connect joins the rooms of the channels the agent
may see; presence (who views / types where). Events themselves are app.infra.events.

The handlers are plain functions of a `link` (the socket they serve: its sid, join, leave,
emit, disconnect), run inside a Flask request context built from the socket's handshake, so
`current_user` is the agent of the session cookie. Two servers run them: Flask-SocketIO in
threading mode inside `threadline serve` (ThreadLink, below), and the asyncio server of
`threadline realtime` (app.web.realtime), which runs each call on a thread of its executor."""
from __future__ import annotations

import functools
import logging
import threading
from typing import Any, Callable

import socketio as socketio_module
from flask import request
from flask_login import current_user
from flask_socketio import disconnect, join_room, leave_room

from app.infra.events import (
    ADMINS_ROOM,
    NAMESPACE,
    agent_room,
    channel_room,
    conversation_room,
)
from app.infra import live
from app.infra.extensions import socketio

log = logging.getLogger(__name__)


class Presence:
    """Who views / types in which conversation, per Socket.IO connection (this process).

    Ephemeral by design: it is not in the event log, and a reconnecting browser re-announces
    what it views. With several web processes each process knows its own connections; the
    `presence` broadcast still reaches everyone through the message queue."""

    def __init__(self):
        self._lock = threading.Lock()
        self._by_sid: dict[str, dict[str, Any]] = {}

    def set(self, sid: str, agent_id: int, name: str, conversation_id: int | None,
            typing: bool = False) -> dict[str, Any] | None:
        with self._lock:
            previous = self._by_sid.get(sid)
            if conversation_id is None:
                self._by_sid.pop(sid, None)
            else:
                self._by_sid[sid] = {"agent_id": agent_id, "name": name,
                                     "conversation_id": conversation_id, "typing": typing}
            return previous

    def drop(self, sid: str) -> dict[str, Any] | None:
        with self._lock:
            return self._by_sid.pop(sid, None)

    def viewers(self, conversation_id: int) -> list[dict[str, Any]]:
        with self._lock:
            seen: dict[int, dict[str, Any]] = {}
            for entry in self._by_sid.values():
                if entry["conversation_id"] == conversation_id:
                    agent = seen.setdefault(entry["agent_id"], {
                        "agent_id": entry["agent_id"], "name": entry["name"], "typing": False})
                    agent["typing"] = agent["typing"] or entry["typing"]
            return list(seen.values())


presence = Presence()


class ThreadLink:
    """The socket of the Flask-SocketIO event being handled (threading server)."""

    @property
    def sid(self) -> str:
        return request.sid  # type: ignore[attr-defined]

    def join(self, room: str) -> None:
        join_room(room)

    def leave(self, room: str) -> None:
        leave_room(room)

    def emit(self, event: str, data: Any, to: str | None = None) -> None:
        socketio.emit(event, data, namespace=request.namespace,  # type: ignore[attr-defined]
                      to=to or request.sid)  # type: ignore[attr-defined]

    def disconnect(self) -> None:
        disconnect()


def _broadcast_presence(link, conversation_id: int) -> None:
    link.emit("presence", {"type": "presence", "data": {
        "conversation_id": conversation_id, "viewers": presence.viewers(conversation_id)}},
        to=conversation_room(conversation_id))


def _count_connection(agent_id: int, delta: int) -> None:
    """Availability follows the agent's open browsers (app.usecases.distribution)."""
    from app.infra.state import db
    from app.usecases.distribution import socket_connected

    try:
        socket_connected(db.session, agent_id, delta)
    except Exception:
        db.session.rollback()
        log.exception("availability of agent %s not updated", agent_id)


# --- the handlers (shared by both servers) ----------------------------------------------------

def on_connect(link, auth=None) -> bool:
    from app.domain.access import visible_channel_ids
    from app.web.origins import foreign_origin

    origin = foreign_origin()
    if origin is not None:  # another site's page riding on the agent's cookie
        log.info("agents socket refused for origin %s", origin[:200])
        return False
    if not current_user.is_authenticated:
        return False  # refuses the connection
    channels = visible_channel_ids(current_user)
    if channels is None:
        link.join(ADMINS_ROOM)
    else:
        for channel_id in channels:
            link.join(channel_room(channel_id))
    link.join(agent_room(current_user.id))
    live.track(current_user.id, link.sid)
    log.debug("agent %s connected (%s)", current_user.id, link.sid)
    _count_connection(current_user.id, +1)
    return True


def on_logout(link, _data=None) -> None:
    link.disconnect()


def _leave_current(link, keep: int | None = None) -> None:
    previous = presence.drop(link.sid)
    if previous and previous["conversation_id"] != keep:
        link.leave(conversation_room(previous["conversation_id"]))
        _broadcast_presence(link, previous["conversation_id"])


def on_view(link, data=None) -> dict[str, Any]:
    """The agent opened a conversation (or closed it: conversation_id null). Joining its
    room needs can_see_conversation; the answer says who else is there."""
    from app.domain.access import can_see_conversation
    from app.infra.models import Conversation
    from app.infra.state import db

    conversation_id = (data if isinstance(data, dict) else {}).get("conversation_id")
    if not current_user.is_authenticated:
        return {"ok": False, "error": "signed out"}
    if conversation_id is None:
        _leave_current(link)
        return {"ok": True, "viewers": []}
    try:
        conversation = db.session.get(Conversation, int(conversation_id))
    except (TypeError, ValueError):
        conversation = None
    if conversation is None or not can_see_conversation(current_user, conversation):
        return {"ok": False, "error": "conversation not found"}
    conversation_id = conversation.id
    _leave_current(link, keep=conversation_id)
    link.join(conversation_room(conversation_id))
    presence.set(link.sid, current_user.id, current_user.name, conversation_id)
    _broadcast_presence(link, conversation_id)
    return {"ok": True, "viewers": presence.viewers(conversation_id)}


def on_typing(link, data=None) -> dict[str, Any]:
    """{conversation_id, typing: bool}; only for the conversation this socket views."""
    data = data if isinstance(data, dict) else {}
    if not current_user.is_authenticated or not str(data.get("conversation_id", "")).isdigit():
        return {"ok": False}
    current = presence.viewers(int(data["conversation_id"]))
    mine = [v for v in current if v["agent_id"] == current_user.id]
    if not mine:
        return {"ok": False, "error": "not viewing this conversation"}
    presence.set(link.sid, current_user.id, current_user.name,
                 int(data["conversation_id"]), bool(data.get("typing")))
    _broadcast_presence(link, int(data["conversation_id"]))
    from app.web.widget.typing import agent_typing  # the site visitor sees "… is typing" too

    agent_typing(int(data["conversation_id"]), current_user.name, bool(data.get("typing")))
    return {"ok": True}


def on_disconnect(link, *_args) -> None:
    live.untrack(link.sid)
    previous = presence.drop(link.sid)
    if previous:
        _broadcast_presence(link, previous["conversation_id"])
    if current_user.is_authenticated:
        _count_connection(current_user.id, -1)


HANDLERS: dict[str, Callable[..., Any]] = {
    "connect": on_connect, "logout": on_logout, "view": on_view, "typing": on_typing,
    "disconnect": on_disconnect}


def _on_thread(handler):
    """A shared handler as a Flask-SocketIO one: the link is the current socket; the
    thread's database session ends with the event (a websocket thread is long-lived, and on
    SQLite an open transaction holds the write lock)."""
    @functools.wraps(handler)
    def wrapper(*args):
        from app.infra.state import db

        try:
            return handler(ThreadLink(), *args)
        finally:
            db.session.remove()
    return wrapper


_registered = False


def register_handlers() -> None:
    """Socket.IO handlers live on the one module-level SocketIO; register them once."""
    global _registered
    if _registered:
        return
    _registered = True
    for event, handler in HANDLERS.items():
        socketio.on(event, namespace=NAMESPACE)(_on_thread(handler))


def _disconnect_members(manager, room: str | None, namespace: str | None) -> None:
    """Closing an agent's room (app.infra.events.end_agent_sockets) disconnects its sockets
    connected to this process: a revoked session keeps no live feed."""
    if namespace != NAMESPACE or not room or not room.startswith("agent:"):
        return
    sids = [sid for sid, _eio_sid in manager.get_participants(namespace, room)]

    def disconnect_all() -> None:
        # on its own thread: the disconnect handler ends the thread's database session,
        # and the caller may be inside a commit (after_commit) on its request thread
        for sid in sids:
            manager.server.disconnect(sid, namespace=namespace, ignore_queue=True)

    if sids:
        manager.server.start_background_task(disconnect_all)


class RevokingManager(socketio_module.Manager):
    """The in-process client manager (no Redis)."""

    def close_room(self, room, namespace):
        _disconnect_members(self, room, namespace)
        return super().close_room(room, namespace)


class RevokingRedisManager(socketio_module.RedisManager):
    """The Redis client manager: a close_room published by any process reaches each."""

    def _handle_close_room(self, message):
        _disconnect_members(self, message.get("room"), message.get("namespace"))
        return super()._handle_close_room(message)


def _client_manager(options: dict[str, Any], emit_only: bool = False):
    if options.get("message_queue"):
        return RevokingRedisManager(options["message_queue"], channel=options["channel"],
                                    write_only=emit_only)
    return RevokingManager()


def socketio_options(config: dict, emit_only: bool = False) -> dict[str, Any]:
    """Flask-SocketIO's options. emit_only: this process holds no socket of its own (the
    realtime process: its sockets are the asyncio server's), it only publishes on Redis."""
    options: dict[str, Any] = {
        # threading + simple-websocket in every mode: no monkey patching, so database drivers
        # and the in-process worker thread behave as plain threads (see README).
        "async_mode": "threading",
        "cors_allowed_origins": [],
        "logger": False,
        "engineio_logger": False,
    }
    # Always explicit: SocketIO.init_app keeps options of an app created earlier in the same
    # process, so an embedded app after a Redis one would otherwise inherit its queue.
    # The Redis pub/sub channel is per install ([realtime] channel, by default derived from
    # the database): Redis pub/sub ignores the db number, so a fixed name would carry one
    # install's events to the agents of another sharing the Redis server. Workers build
    # their app through create_app too, so they publish on the same channel.
    options["message_queue"] = config["redis_url"] or None
    options["channel"] = config.get("realtime", {}).get("channel") or "threadline"
    # always a new manager of ours (SocketIO.init_app would keep an earlier app's)
    options["client_manager"] = _client_manager(options, emit_only and bool(options["message_queue"]))
    return options


