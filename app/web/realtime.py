"""The realtime tier: agents' (`/agents`) and site visitors' (`/widget`) websockets held by
python-socketio's asyncio server (aiohttp), for many idle connections at a few tens of KB each
instead of a thread each (`threadline realtime`, app/realtime.py).

The handlers are the very functions the threading server runs (app.web.sockets.HANDLERS,
app.web.widget.socket.HANDLERS): each call runs on a thread of a small executor, inside a
Flask request context built from the socket's handshake (its cookie, Origin, Host, address),
so `current_user` is the agent of the session cookie, decoded by the app's own session
interface and secret, checked on every event as under `threadline serve`; the thread's
database session ends with the call. What a handler does to its socket (join, leave, emit,
disconnect) goes back to the event loop through an AsyncLink.

Events of web processes and workers come through the install's Redis channel
(AsyncRedisManager); a closed `agent:<id>` room (a revoked session, app.infra.events
.end_agent_sockets) disconnects that agent's sockets here, as RevokingRedisManager does in a
threading server."""
from __future__ import annotations

import asyncio
import io
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import socketio as socketio_module
from engineio import packet as engineio_packet
from socketio import packet as socketio_packet
from flask import request

from app.infra.events import NAMESPACE as AGENTS

log = logging.getLogger(__name__)


class _SequentialEmit(socketio_module.AsyncManager):
    """An event to a room is encoded once and queued on each member's socket in turn.
    python-socketio creates a task per member and waits for them all; queueing a packet
    never waits on the network (each socket's own writer task sends it), so the tasks only
    cost: about half the CPU per delivered event (bench/README.md, issue 15)."""

    async def emit(self, event, data, namespace, room=None, skip_sid=None, callback=None,
                   to=None, **kwargs):
        if callback is not None:
            return await super().emit(event, data, namespace, room=room, skip_sid=skip_sid,
                                      callback=callback, to=to, **kwargs)
        room = to or room
        if namespace not in self.rooms:
            return
        if isinstance(data, tuple):
            data = list(data)
        elif data is not None:
            data = [data]
        else:
            data = []
        skip = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        encoded = self.server.packet_class(socketio_packet.EVENT, namespace=namespace,
                                           data=[event] + data).encode()
        packets = [engineio_packet.Packet(engineio_packet.MESSAGE, p)
                   for p in (encoded if isinstance(encoded, list) else [encoded])]
        for sid, eio_sid in list(self.get_participants(namespace, room)):
            if sid in skip:
                continue
            for pkt in packets:
                try:
                    await self.server._send_eio_packet(eio_sid, pkt)
                except Exception:  # one closing socket must not cost the others the event
                    log.debug("event to %s not queued", sid, exc_info=True)


class RevokingAsyncRedisManager(socketio_module.AsyncRedisManager, _SequentialEmit):
    """A close_room of an `agent:<id>` room, published by any process, disconnects that
    agent's sockets held here before the room goes (a revoked session keeps no live feed)."""

    async def _handle_close_room(self, message):
        room, namespace = message.get("room"), message.get("namespace")
        if namespace == AGENTS and room and str(room).startswith("agent:"):
            for sid, _eio_sid in list(self.get_participants(namespace, room)):
                await self.server.disconnect(sid, namespace=namespace, ignore_queue=True)
        return await super()._handle_close_room(message)


class AsyncLink:
    """The socket a handler serves, seen from the executor thread the handler runs on."""

    def __init__(self, bridge: "Bridge", sid: str, namespace: str):
        self.bridge, self.sid, self.namespace = bridge, sid, namespace

    def _wait(self, coro) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.bridge.loop).result(30)

    def join(self, room: str) -> None:
        self._wait(self.bridge.sio.enter_room(self.sid, room, namespace=self.namespace))

    def leave(self, room: str) -> None:
        self._wait(self.bridge.sio.leave_room(self.sid, room, namespace=self.namespace))

    def emit(self, event: str, data: Any, to: str | None = None) -> None:
        self._wait(self.bridge.sio.emit(event, data, to=to or self.sid,
                                        namespace=self.namespace))

    def disconnect(self) -> None:
        # not waited for: the disconnect handler it triggers needs an executor thread
        asyncio.run_coroutine_threadsafe(
            self.bridge.sio.disconnect(self.sid, namespace=self.namespace), self.bridge.loop)


class Bridge:
    """Runs the shared handlers for the asyncio server."""

    def __init__(self, app, sio: socketio_module.AsyncServer, threads: int):
        self.app, self.sio = app, sio
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="realtime")
        self.loop: asyncio.AbstractEventLoop | None = None
        hops = int(app.config["THREADLINE"]["security"]["trusted_proxy_hops"])
        self._proxy_fix = None
        if hops > 0:  # X-Forwarded-* from the configured proxies, as the web app reads them
            from werkzeug.middleware.proxy_fix import ProxyFix

            self._proxy_fix = ProxyFix(lambda environ, _start: environ, x_for=hops,
                                       x_proto=hops, x_host=hops)

    def _environ(self, environ: dict[str, Any]) -> dict[str, Any]:
        """A WSGI environ of the handshake for Flask: no body, no aiohttp objects."""
        clean = {k: v for k, v in environ.items() if k != "aiohttp.request"}
        clean["wsgi.input"] = io.BytesIO(b"")
        clean.setdefault("SERVER_NAME", "realtime")
        if self._proxy_fix is not None:
            clean = self._proxy_fix(clean, None)
        return clean

    def _run(self, environ: dict[str, Any], sid: str, namespace: str,
             handler: Callable[..., Any], args: tuple) -> Any:
        from app.infra.state import db

        with self.app.request_context(self._environ(environ)):
            request.sid = sid  # type: ignore[attr-defined]  # as Flask-SocketIO sets them
            request.namespace = namespace  # type: ignore[attr-defined]
            try:
                return handler(AsyncLink(self, sid, namespace), *args)
            finally:
                db.session.remove()

    async def call(self, environ: dict[str, Any] | None, sid: str, namespace: str,
                   handler: Callable[..., Any], *args: Any) -> Any:
        self.loop = asyncio.get_running_loop()
        if environ is None:
            environ = self.sio.get_environ(sid, namespace) or {}
        return await self.loop.run_in_executor(self.executor, self._run, environ, sid,
                                               namespace, handler, args)


def _real_address(environ: dict[str, Any]) -> None:
    """python-engineio's aiohttp driver says 127.0.0.1 for every client: the peer's address."""
    aio_request = environ.get("aiohttp.request")
    remote = getattr(aio_request, "remote", None)
    if remote:
        environ["REMOTE_ADDR"] = remote


def register(bridge: Bridge, namespace: str, handlers: dict[str, Callable[..., Any]]) -> None:
    sio = bridge.sio

    for event, handler in handlers.items():
        if event == "connect":
            async def on_connect(sid, environ, auth=None, _handler=handler):
                _real_address(environ)
                return await bridge.call(environ, sid, namespace, _handler, auth)

            sio.on("connect", on_connect, namespace=namespace)
        elif event == "disconnect":
            async def on_disconnect(sid, *_reason, _handler=handler):
                await bridge.call(None, sid, namespace, _handler)

            sio.on("disconnect", on_disconnect, namespace=namespace)
        else:
            async def on_event(sid, *args, _handler=handler):
                return await bridge.call(None, sid, namespace, _handler, *args[:1])

            sio.on(event, on_event, namespace=namespace)


def build_server(app, threads: int = 8) -> tuple[socketio_module.AsyncServer, Bridge]:
    """The asyncio Socket.IO server of the install (needs redis_url), with both namespaces."""
    from app.web.sockets import HANDLERS as AGENT_HANDLERS
    from app.web.widget.socket import HANDLERS as WIDGET_HANDLERS
    from app.web.widget.visitors import NAMESPACE as WIDGET

    config = app.config["THREADLINE"]
    if not config["redis_url"]:
        raise RuntimeError("redis_url is not set: the realtime process hears the web "
                           "processes and workers through Redis")
    manager = RevokingAsyncRedisManager(config["redis_url"],
                                        channel=config["realtime"]["channel"] or "threadline")
    sio = socketio_module.AsyncServer(async_mode="aiohttp", client_manager=manager,
                                      cors_allowed_origins=[], logger=False,
                                      engineio_logger=False)
    bridge = Bridge(app, sio, threads)
    register(bridge, AGENTS, AGENT_HANDLERS)
    register(bridge, WIDGET, WIDGET_HANDLERS)
    return sio, bridge
