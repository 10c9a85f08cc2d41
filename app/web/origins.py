"""Which browser origins may open Threadline's sockets: the inbox's own (the Host it is
reached by, and `server.public_url`). The site chat's frame is served from the same origin;
the embedding site's origin is checked against the channel's `allowed_origins` through the
frame token (app.web.widget)."""
from __future__ import annotations

from flask import current_app, request

from connectors.webchat import normalize_origin


def own_origins() -> set[str]:
    origins = {normalize_origin(request.host_url),
               normalize_origin(current_app.config["THREADLINE"]["server"]["public_url"])}
    return {origin for origin in origins if origin}


def foreign_origin() -> str | None:
    """The request's Origin header when a browser sent one that is not ours (an unreadable
    one such as `null` counts as foreign); None for our own pages and for clients that send
    no Origin (browsers always do on a websocket or cross-origin request)."""
    raw = request.headers.get("Origin")
    if raw is None or normalize_origin(raw) in own_origins():
        return None
    return raw
