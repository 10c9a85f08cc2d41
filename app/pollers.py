"""Channel pollers that run inside `serve` on the embedded default (Telegram long polling,
IMAP sync). Each channel kind registers a starter here."""
from __future__ import annotations

import logging
from typing import Any, Callable

from sqlalchemy import select

log = logging.getLogger(__name__)

# kind -> function(app, channel_id) returning a started thread-like object with stop()
POLLER_STARTERS: dict[str, Callable[[Any, int], Any]] = {}


def start_pollers(app) -> list[Any]:
    from .models import Channel
    from .state import db

    started = []
    with app.app_context():
        channels = list(db.session.execute(
            select(Channel.id, Channel.kind).where(Channel.active.is_(True))))
        db.session.remove()
    for channel_id, kind in channels:
        starter = POLLER_STARTERS.get(kind)
        if starter is not None:
            poller = starter(app, channel_id)
            if poller is not None:
                started.append(poller)
    if started:
        log.info("started %d channel poller(s)", len(started))
    return started
