"""Logging with secrets kept out: every record is scrubbed of known secret values (the
secret key, database and Redis passwords, channel tokens as channels are used) and of
Telegram bot tokens in URLs, which client libraries log at INFO."""
from __future__ import annotations

import logging
import re
import threading
from typing import Any, Iterable

_BOT_TOKEN = re.compile(r"bot\d{3,}:[A-Za-z0-9_-]{10,}")
_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False


def register_secrets(values: Iterable[Any]) -> None:
    new = {str(v) for v in values if v and len(str(v)) >= 6}
    if not new <= _secrets:
        with _lock:
            _secrets.update(new)


def register_channel_secrets(connector, settings: dict[str, Any]) -> None:
    register_secrets(settings.get(key) for key in connector.secret_keys)


def scrub(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    return _BOT_TOKEN.sub("bot***", text)


def install(level: str) -> None:
    global _installed
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    root.setLevel(level)
    # client libraries log every HTTP request at INFO: a poller would fill the log
    quiet = logging.DEBUG if str(level).upper() == "DEBUG" else logging.WARNING
    for noisy in ("httpx", "httpcore", "telegram"):
        logging.getLogger(noisy).setLevel(quiet)
    if _installed:
        return
    _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it for the handler to report
            return record
        scrubbed = scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return record

    logging.setLogRecordFactory(factory)
