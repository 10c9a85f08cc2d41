"""Who is connected to Socket.IO `/agents` as whom, so that an admin's change reaches
connected agents without a reload: their sockets enter (or leave) channel rooms and the
admins' room on the server side, and a deactivated agent's sockets are disconnected.

The sid registry lives in Redis when one is configured (several web processes: a socket may be
held by another process; python-socketio's message queue carries enter_room / leave_room /
disconnect to the process that holds it), else in this process."""
from __future__ import annotations

import logging
import threading
from typing import Iterable

from flask import current_app, has_app_context

from app.infra.extensions import socketio

log = logging.getLogger(__name__)
NAMESPACE = "/agents"
_local: dict[int, set[str]] = {}
_agent_of: dict[str, int] = {}  # sid -> agent id, for the sockets this process holds
_lock = threading.Lock()


def _redis():
    if not has_app_context():
        return None
    url = current_app.config["THREADLINE"]["redis_url"]
    if not url:
        return None
    client = current_app.extensions.get("threadline.live_redis")
    if client is None:
        from redis import Redis

        client = current_app.extensions["threadline.live_redis"] = Redis.from_url(url)
    return client


def _key(agent_id: int) -> str:
    return f"threadline:agent-sockets:{agent_id}"


def track(agent_id: int, sid: str) -> None:
    redis = _redis()
    if redis is not None:
        redis.sadd(_key(agent_id), sid)
        redis.expire(_key(agent_id), 7 * 24 * 3600)
    with _lock:
        _local.setdefault(agent_id, set()).add(sid)
        _agent_of[sid] = agent_id


def untrack(sid: str) -> None:
    with _lock:
        agent_id = _agent_of.pop(sid, None)
        if agent_id is not None:
            _local.get(agent_id, set()).discard(sid)
    if agent_id is None:
        return
    redis = _redis()
    if redis is not None:
        redis.srem(_key(agent_id), sid)


def sids_of(agent_id: int) -> set[str]:
    redis = _redis()
    if redis is not None:
        return {s.decode() if isinstance(s, bytes) else s for s in redis.smembers(_key(agent_id))}
    with _lock:
        return set(_local.get(agent_id, set()))


def sync_rooms(agent_id: int, join: Iterable[str], leave: Iterable[str]) -> int:
    """Put every socket of the agent into `join` and out of `leave`; tell the page to
    refresh its views. Returns how many sockets were told."""
    server = socketio.server
    if server is None:
        return 0
    sids = sids_of(agent_id)
    join, leave = list(join), list(leave)
    for sid in sids:
        for room in leave:
            server.leave_room(sid, room, namespace=NAMESPACE)
        for room in join:
            server.enter_room(sid, room, namespace=NAMESPACE)
    socketio.emit("access.changed", {"type": "access.changed", "data": {"agent_id": agent_id}},
                  namespace=NAMESPACE, to=f"agent:{agent_id}")
    return len(sids)


def drop(agent_id: int) -> int:
    """Disconnect every socket of the agent (deactivated)."""
    server = socketio.server
    if server is None:
        return 0
    sids = sids_of(agent_id)
    for sid in sids:
        server.disconnect(sid, namespace=NAMESPACE)
    redis = _redis()
    if redis is not None:
        redis.delete(_key(agent_id))
    with _lock:
        _local.pop(agent_id, None)
    return len(sids)
