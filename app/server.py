"""`threadline serve`: gunicorn with threaded (gthread) workers.

Flask-SocketIO runs in threading mode with simple-websocket, which gunicorn's gthread worker
supports. By default one worker process (`server.workers` = 1), which also holds the
websockets: the embedded default. With Redis and `threadline realtime` holding /socket.io
(the proxy sends it there), `server.workers` HTTP processes share the port (README
"Production layout").
"""
from __future__ import annotations

import gc
import logging
from typing import Any

from gunicorn.app.base import BaseApplication

log = logging.getLogger(__name__)


def start_background(app) -> list[Any]:
    """In the embedded default (no Redis) the web process also runs the jobs, the sweeper
    and the channel pollers."""
    from app.infra.queues import InProcessQueue, Sweeper

    config = app.config["THREADLINE"]
    started: list[Any] = []
    queue = app.extensions["threadline.queue"]
    if isinstance(queue, InProcessQueue):
        # the only web process: connections counted by an earlier run are gone
        from app.infra.state import db
        from app.usecases.distribution import forget_connections

        with app.app_context():
            forget_connections(db.session)
        queue.start()
        sweeper = Sweeper(app, float(config["jobs"]["sweep_interval"]))
        sweeper.start()
        started += [queue, sweeper]
    if config["server"]["pollers"] and isinstance(queue, InProcessQueue):
        from app.usecases.pollers import start_pollers

        started += start_pollers(app)
    return started


class _Gunicorn(BaseApplication):
    def __init__(self, config: dict[str, Any]):
        self.threadline_config = config
        super().__init__()

    def load_config(self) -> None:
        server = self.threadline_config["server"]
        self.cfg.set("bind", f"{server['host']}:{server['port']}")
        self.cfg.set("workers", server_workers(self.threadline_config))
        self.cfg.set("worker_class", "gthread")
        self.cfg.set("threads", int(server["threads"]))
        # gunicorn's default cap of 1,000 simultaneous connections per worker
        self.cfg.set("worker_connections", max(1000, 2 * int(server["threads"])))
        # long-polling Socket.IO requests and idle websockets must not be killed
        self.cfg.set("timeout", 0)
        self.cfg.set("graceful_timeout", 5)
        self.cfg.set("accesslog", None)
        # gunicorn >= 25.1 opens a control socket at one fixed path per user
        # (~/.gunicorn/gunicorn.ctl): a second `serve` on the host would remove the first's.
        # Threadline does not use gunicornc, so there is none.
        if "control_socket_disable" in self.cfg.settings:
            self.cfg.set("control_socket_disable", True)
        self.cfg.set("loglevel", self.threadline_config["log"]["level"].lower())

    def create(self):
        from app import create_app

        return create_app(self.threadline_config,
                          emit_only=realtime_external(self.threadline_config))

    def load(self):
        app = self.create()
        start_background(app)
        # the objects built at start (Flask, SQLAlchemy, translations: ~190,000) stay for the
        # process's life: out of the collector's sight, a full collection takes ~10 ms instead
        # of 130-250 ms, which a report request paid every few calls (bench/README.md, issue 20)
        gc.collect()
        gc.freeze()
        return app


def server_workers(config: dict[str, Any]) -> int:
    """HTTP worker processes: more than one only with Redis (jobs in rq workers, events
    between processes), where `threadline realtime` holds the sockets."""
    workers = int(config["server"].get("workers") or 1)
    if workers < 1:
        raise RuntimeError("server.workers must be at least 1")
    if workers > 1 and not config["redis_url"]:
        raise RuntimeError("server.workers > 1 needs redis_url: the embedded default runs "
                           "its jobs and sockets in its one process")
    return workers


def realtime_external(config: dict[str, Any]) -> bool:
    """`[realtime] external`: `threadline realtime` holds the sockets, so each HTTP process
    only publishes its events on Redis (a write-only manager: no thread listening on the
    channel and decoding every event of the install). Off by default: `serve` answers
    /socket.io itself, as the embedded default always has."""
    if not config["realtime"].get("external"):
        return False
    if not config["redis_url"]:
        raise RuntimeError("realtime.external needs redis_url: `threadline realtime` hears "
                           "the web processes and workers through Redis")
    return True


def run_server(config: dict[str, Any]) -> None:
    server = config["server"]
    workers = server_workers(config)
    realtime_external(config)  # refuses a setting it cannot honour before gunicorn starts
    mode = "PostgreSQL/Redis" if config["redis_url"] else "embedded (in-process jobs)"
    url = server["public_url"] or f"http://{server['host']}:{server['port']}/"
    print(f"Threadline listening on {url} — {mode}"
          + (f", {workers} HTTP processes" if workers > 1 else "")
          + (", sockets on `threadline realtime`" if realtime_external(config) else ""),
          flush=True)
    _Gunicorn(config).run()
