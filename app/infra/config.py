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
        # threads of the single web worker process; a connected agent's websocket holds one
        # for as long as it is open, so allow for every agent plus concurrent requests
        "threads": 200,
        "pollers": True,         # run Telegram pollers / IMAP sync inside `serve` (embedded mode)
    },
    "jobs": {
        "max_attempts": 6,       # sends of one outbound message before it is marked failed
        "backoff_base": 2.0,     # seconds; attempt n waits base * 2**(n-1), with jitter
        "backoff_max": 600.0,
        "sweep_interval": 5.0,   # seconds between sweeps for due retries and stale sends
        "stale_after": 120.0,    # a send still "sending" after this long is retried
        "inprocess_threads": 2,  # worker threads of the embedded default
        # inbound events a worker applies in one transaction (one commit, one job per batch)
        "ingest_batch": 100,
        "send_batch": 20,        # queued replies a worker claims at once (then sends in turn)
        "queue": "threadline",   # rq queue name
        # a site-chat reply the widget never showed is emailed (when the visitor left an
        # address) after this many seconds
        "widget_email_delay": 300.0,
    },
    "storage": {
        "attachments_dir": "",   # empty: <data_dir>/attachments
        "max_attachment_bytes": 25 * 1024 * 1024,
    },
    "identity": {
        "default_region": "RU",  # region for phone numbers written without +country code
    },
    "events": {
        "retention_days": 30,    # event log kept for reconnecting clients
    },
    "log": {
        "level": "INFO",
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
    config["config_path"] = str(path)
    return config


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
