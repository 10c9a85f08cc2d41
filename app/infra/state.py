"""Per-app objects, reached through the app context (web request, job, CLI command)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import current_app
from werkzeug.local import LocalProxy

if TYPE_CHECKING:
    from app.infra.db import Database
    from app.infra.pace import Pacer
    from app.infra.queues import JobQueue


def _db() -> "Database":
    return current_app.extensions["threadline.db"]


def _queue() -> "JobQueue":
    return current_app.extensions["threadline.queue"]


def _pacer() -> "Pacer":
    return current_app.extensions["threadline.pacer"]


def _config() -> dict[str, Any]:
    return current_app.config["THREADLINE"]


db: "Database" = LocalProxy(_db)  # type: ignore[assignment]
queue: "JobQueue" = LocalProxy(_queue)  # type: ignore[assignment]
config: dict[str, Any] = LocalProxy(_config)  # type: ignore[assignment]
pacer: "Pacer" = LocalProxy(_pacer)  # type: ignore[assignment]
