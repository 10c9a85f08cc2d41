"""Threadline: a self-hosted shared inbox. `create_app` is the app factory."""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from apiflask import APIFlask

from app.infra.config import load_config, redacted

log = logging.getLogger(__name__)


def _configure_logging(config: dict[str, Any]) -> None:
    from sqlalchemy.engine import make_url

    from app.infra.logs import install, register_secrets

    install(config["log"]["level"])
    secrets = [config["secret_key"]]
    for key in ("database_url", "redis_url"):
        try:
            secrets.append(make_url(config[key]).password if config[key] else None)
        except Exception:
            pass
    register_secrets(secrets)


def create_app(config: dict[str, Any] | None = None, *, emit_only: bool = False,
               **overrides: Any) -> APIFlask:
    """The Flask app. emit_only (with redis_url): for `threadline realtime`, whose sockets
    are held by the asyncio server, and `serve` with `[realtime] external`; its
    Flask-SocketIO only publishes on Redis."""
    from app import wiring
    from app.infra.db import Database
    from app.infra.extensions import csrf, limiter, login_manager, socketio
    from app.infra.queues import InProcessQueue, RQQueue
    from app.web import register_blueprints
    from app.web.sockets import register_handlers, socketio_options

    config = config or load_config(overrides=overrides or None)
    _configure_logging(config)
    if not config["secret_key"]:
        raise RuntimeError("secret_key is not set: run `threadline init` first "
                           "(or set THREADLINE_SECRET_KEY)")

    app = APIFlask(__name__, title="Threadline API", version="v1",
                   spec_path="/api/v1/openapi.json", docs_path="/api/v1/docs",
                   template_folder="templates", static_folder="../static",
                   static_url_path="/static")
    https = config["server"]["public_url"].lower().startswith("https://")
    app.config.update(
        SECRET_KEY=config["secret_key"],
        THREADLINE=config,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=https,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=https,
        REMEMBER_COOKIE_DURATION=timedelta(days=float(config["security"]["remember_days"])),
        WTF_CSRF_TIME_LIMIT=None,
        RATELIMIT_STORAGE_URI=config["redis_url"] or "memory://",
        RATELIMIT_HEADERS_ENABLED=True,  # Retry-After on 429
        AUTH_ERROR_SCHEMA=None,
        # /api/v1/docs works without internet: Swagger UI is vendored in static/vendor
        # (swagger-ui-dist from the npm registry; static/vendor/swagger-ui/VERSION)
        SWAGGER_UI_CSS="/static/vendor/swagger-ui/swagger-ui.css",
        SWAGGER_UI_BUNDLE_JS="/static/vendor/swagger-ui/swagger-ui-bundle.js",
        SWAGGER_UI_STANDALONE_PRESET_JS="/static/vendor/swagger-ui/swagger-ui-standalone-preset.js",
        DOCS_FAVICON="/static/vendor/swagger-ui/favicon-32x32.png",
    )
    # every request thread may hold a connection at once: waiting for one cost 10% of a
    # request's time in the benchmark with the pool smaller than the thread count
    threads = int(config["server"]["threads"])
    app.extensions["threadline.db"] = database = Database(
        config["database_url"], pool_size=10, max_overflow=max(20, min(threads, 100) - 10))
    if config["redis_url"]:
        app.extensions["threadline.queue"] = RQQueue(config["redis_url"], config["jobs"]["queue"])
    else:
        app.extensions["threadline.queue"] = InProcessQueue(
            app, int(config["jobs"]["inprocess_threads"]))

    from app.infra.pace import Pacer

    # sends paced per channel and chat across every worker (Redis) or this process
    app.extensions["threadline.pacer"] = Pacer(
        getattr(app.extensions["threadline.queue"], "redis", None))

    hops = int(config["security"]["trusted_proxy_hops"])
    if hops > 0:  # X-Forwarded-* only from the configured proxies (login limits, https)
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    login_manager.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    socketio.init_app(app, **socketio_options(config, emit_only=emit_only))
    if emit_only and config["redis_url"]:
        # this process holds no socket (`threadline realtime` does): /socket.io is not
        # answered here (404), so a browser the proxy sent here by mistake fails visibly
        # instead of connecting to a server that never hears an event
        app.wsgi_app = app.wsgi_app.wsgi_app  # type: ignore[attr-defined,method-assign]
    register_handlers()

    wiring.wire()
    register_blueprints(app)

    @app.teardown_appcontext
    def _remove_session(_exc: BaseException | None) -> None:
        database.session.remove()

    log.debug("configuration: %s", redacted(config))
    return app
