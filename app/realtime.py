"""`threadline realtime`: the realtime tier, one asyncio process (aiohttp) holding agents'
and site visitors' websockets at /socket.io (app.web.realtime). The web processes and the
workers emit through the install's Redis channel, as they do to a threading `serve`; the
proxy sends /socket.io here and everything else to `threadline serve` (README
"Production layout")."""
from __future__ import annotations

import gc
import logging
import resource
from typing import Any

log = logging.getLogger(__name__)


def _raise_open_files() -> int:
    """Every socket is a file descriptor: take the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def build(config: dict[str, Any]):
    """The aiohttp application with the Socket.IO server attached."""
    from aiohttp import web

    from app import create_app
    from app.infra.state import db
    from app.usecases.distribution import forget_connections
    from app.web.realtime import build_server

    flask_app = create_app(config, emit_only=True)
    sio, _bridge = build_server(flask_app, int(config["realtime"]["threads"]))
    # the one process holding the install's sockets: connections counted by an earlier run
    # are gone
    with flask_app.app_context():
        forget_connections(db.session)
    application = web.Application()
    sio.attach(application, socketio_path="socket.io")
    return application


def run_realtime(config: dict[str, Any]) -> None:
    from aiohttp import web

    if not config["redis_url"]:
        raise RuntimeError("redis_url is not set: the realtime process hears the web "
                           "processes and workers through Redis")
    files = _raise_open_files()
    application = build(config)
    gc.collect()
    gc.freeze()  # as `serve` does: the objects built at start stay for the process's life
    realtime = config["realtime"]
    print(f"Threadline realtime listening on http://{realtime['host']}:{realtime['port']}"
          f"/socket.io (open files limit {files})", flush=True)
    web.run_app(application, host=realtime["host"], port=int(realtime["port"]), print=None,
                access_log=None, backlog=2048)
