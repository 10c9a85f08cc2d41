"""Configuration: defaults < config.toml < THREADLINE_<SECTION>_<KEY> environment variables.

Top-level keys (database_url, redis_url, secret_key, data_dir) are overridden by
THREADLINE_<KEY>; keys inside a section by THREADLINE_<SECTION>_<KEY>.
"""
from __future__ import annotations

import copy
import os
import tomllib
from pathlib import Path
from typing import Any

DEFAULTS: dict[str, Any] = {
    "database_url": "",          # empty: SQLite file in data_dir
    "redis_url": "",             # empty: in-process worker and Socket.IO, no Redis
    "secret_key": "",            # signs sessions and tokens; `threadline init` writes one
    "data_dir": "var",           # SQLite file, attachments, logs (relative to the config file)
    "server": {
        "host": "127.0.0.1",
        "port": 8000,
        "public_url": "",        # e.g. https://inbox.example.com (webhooks, widget)
        # threads of each web worker process; a websocket held by `serve` (no realtime
        # process) holds one for as long as it is open: allow for them plus requests
        "threads": 200,
        # HTTP worker processes of `threadline serve` (gunicorn); more than 1 needs redis_url
        # and `threadline realtime` holding /socket.io (README "Production layout")
        "workers": 1,
        "pollers": True,         # run Telegram pollers / IMAP sync inside `serve` (embedded mode)
    },
    "jobs": {
        "max_attempts": 6,       # sends of one outbound message before it is marked failed
        "backoff_base": 2.0,     # seconds; attempt n waits base * 2**(n-1), with jitter
        "backoff_max": 600.0,
        "sweep_interval": 5.0,   # seconds between sweeps for due retries and stale sends
        # a job queued but not started after this long (lost with its worker) is queued again
        "stale_after": 120.0,
        # seconds a worker's claim (a send, a webhook delivery) lives without renewal: a
        # live worker renews it every lease/3 seconds; a dead one's lapses and is reclaimed
        "lease": 10.0,
        "inprocess_threads": 2,  # worker threads of the embedded default
        # inbound events a worker applies in one transaction (one commit, one job per batch)
        "ingest_batch": 100,
        # queued messages a worker claims at once per channel (fewer when the channel's
        # pace allows fewer within half a second: app/infra/pace.py)
        "send_batch": 50,
        # threads sending one claimed batch to different chats side by side (one chat's
        # messages stay in order, one after another); 1 = every send in turn
        "send_parallel": 8,
        "queue": "threadline",   # rq queue name
        # a site-chat reply the widget never showed is emailed (when the visitor left an
        # address) after this many seconds
        "widget_email_delay": 300.0,
    },
    "storage": {
        "attachments_dir": "",   # empty: <data_dir>/attachments
        "max_attachment_bytes": 25 * 1024 * 1024,
        # a site-chat upload not sent with a message within this many seconds is deleted
        "widget_upload_ttl": 3600.0,
        # uploads one site-chat visitor may have waiting (not yet sent) at once
        "widget_upload_max_files": 10,
        "widget_upload_max_bytes": 50 * 1024 * 1024,
    },
    "limits": {
        # bytes of one request body; larger ones are answered 413 (JSON) without being read
        "max_request_bytes": 32 * 1024 * 1024,   # anything not listed below
        "webhook_bytes": 2 * 1024 * 1024,        # /webhooks/* (Telegram, WhatsApp, CRM)
        "api_bytes": 2 * 1024 * 1024,            # /api/v1 JSON calls
        "widget_bytes": 256 * 1024,              # the site chat's calls other than uploads
        # file uploads (/api/v1/uploads, /widget/upload) and CSV imports get
        # storage.max_attachment_bytes plus this much for the multipart envelope
        "upload_overhead_bytes": 64 * 1024,
    },
    "campaigns": {
        # sends per second per channel of each kind (Telegram ≈30/s per bot; the SMTP
        # server's limit; WhatsApp's tier); a channel's setting `send_rate` overrides it
        "telegram_rate": 30.0,
        "whatsapp_rate": 50.0,
        "email_rate": 10.0,
        "webchat_rate": 50.0,
        "batch": 500,            # customers a campaign claims per transaction
        "run_seconds": 10.0,     # a runner job's slice before it queues itself again
        "reply_days": 7,         # an inbound message this long after a campaign is its reply
    },
    "identity": {
        "default_region": "RU",  # region for phone numbers written without +country code
    },
    "events": {
        "retention_days": 30,    # event log kept for reconnecting clients
    },
    "realtime": {
        # the Redis pub/sub channel of Socket.IO's message queue; empty: "threadline-" and a
        # short hash of database_url, so installs sharing one Redis never hear each other
        # (Redis pub/sub ignores the db number in redis_url)
        "channel": "",
        # `threadline realtime`: the asyncio Socket.IO server for /socket.io (needs redis_url)
        "host": "127.0.0.1",
        "port": 8010,
        "threads": 8,            # threads running its handlers' database work
        # `threadline realtime` holds the install's sockets (the proxy sends /socket.io
        # there): `serve` runs no Socket.IO listener of its own, its processes only publish
        # on Redis (needs redis_url)
        "external": False,
    },
    "log": {
        "level": "INFO",
    },
    "security": {
        # "keep me signed in" lasts this many days (the remember cookie)
        "remember_days": 30,
        # proxies in front of Threadline whose X-Forwarded-For / -Proto / -Host are trusted
        # (0: none; the client address is the TCP peer's)
        "trusted_proxy_hops": 0,
        # failed sign-ins per account (email) before it answers 429 for a while, whatever
        # the address; the per-address limit stays 10 per minute
        "login_account_limit": "5 per 15 minutes",
        # outgoing webhooks may target loopback, link-local and private addresses
        "allow_private_webhook_urls": False,
    },
    "account": {
        # the time zone of report periods (days, hours): an IANA name such as Europe/Moscow
        "time_zone": "UTC",
    },
}

SECRET_KEYS = {"secret_key", "database_url", "redis_url"}


class ConfigError(ValueError):
    pass


def _coerce(value: str, like: Any) -> Any:
    if isinstance(like, bool):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"expected true/false, got {value!r}")
    if isinstance(like, int):
        return int(value)
    if isinstance(like, float):
        return float(value)
    return value


def _merge(base: dict, override: dict, where: str = "") -> None:
    for key, value in override.items():
        if key not in base:
            raise ConfigError(f"unknown configuration key {where}{key!r}")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}{key} must be a table")
            _merge(base[key], value, f"{where}{key}.")
        else:
            base[key] = value


def _apply_env(config: dict, environ: dict[str, str]) -> None:
    for key, value in config.items():
        if isinstance(value, dict):
            for sub in value:
                env = f"THREADLINE_{key.upper()}_{sub.upper()}"
                if env in environ:
                    value[sub] = _coerce(environ[env], value[sub])
        else:
            env = f"THREADLINE_{key.upper()}"
            if env in environ:
                config[key] = _coerce(environ[env], value)


def config_path(environ: dict[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    return Path(environ.get("THREADLINE_CONFIG", "config.toml")).resolve()


def load_config(path: str | Path | None = None, environ: dict[str, str] | None = None,
                overrides: dict | None = None) -> dict[str, Any]:
    environ = dict(os.environ if environ is None else environ)
    path = Path(path).resolve() if path else config_path(environ)
    config = copy.deepcopy(DEFAULTS)
    if path.exists():
        with path.open("rb") as fh:
            try:
                _merge(config, tomllib.load(fh))
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{path}: {exc}") from None
    _apply_env(config, environ)
    if overrides:
        _merge(config, overrides)
    base_dir = path.parent
    data_dir = Path(config["data_dir"])
    config["data_dir"] = str(data_dir if data_dir.is_absolute() else base_dir / data_dir)
    if not config["database_url"]:
        config["database_url"] = f"sqlite:///{Path(config['data_dir']) / 'threadline.db'}"
    if not config["storage"]["attachments_dir"]:
        config["storage"]["attachments_dir"] = str(Path(config["data_dir"]) / "attachments")
    if not config["realtime"]["channel"]:
        config["realtime"]["channel"] = install_channel(config["database_url"])
    config["config_path"] = str(path)
    return config


def install_channel(database_url: str) -> str:
    """The default Socket.IO channel of an install: derived from its database, the one thing
    every process of one install shares and two installs never do. The driver name and the
    password are left out, so `postgresql://` and `postgresql+psycopg://` spellings (and a
    rotated password) still meet on one channel."""
    import hashlib

    from sqlalchemy.engine import make_url

    try:
        url = make_url(database_url)
        url = url.set(drivername=url.get_backend_name())
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            url = url.set(database=os.path.realpath(url.database))
        key = url.render_as_string(hide_password=True)
    except Exception:
        key = database_url
    return "threadline-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def redacted(config: dict[str, Any]) -> dict[str, Any]:
    """A copy safe to print or log."""
    out = copy.deepcopy(config)
    for key in SECRET_KEYS:
        if out.get(key):
            out[key] = redact_url(out[key]) if key.endswith("_url") else "***"
    return out


def redact_url(url: str) -> str:
    """postgresql://user:pw@host/db -> postgresql://user:***@host/db"""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "***"
