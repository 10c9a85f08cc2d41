"""The site chat widget: `/widget.js`, the widget iframe, its HTTP endpoints and the
Socket.IO namespace `/widget`.

How a visitor is tied to a thread (docs/widget.md has the whole story):

- `/widget.js` (on the customer's site) opens an iframe at `/widget/frame?c=<public id>`,
  served from Threadline's own origin, so the widget's CSS and scripts are isolated and its
  Socket.IO connection is same-origin. The frame request's Origin/Referer must be one of the
  channel's `allowed_origins`; the frame page then carries a *frame token* (itsdangerous,
  signed with the app secret) naming the channel and the embedding origin, and the browser
  enforces the same list with `Content-Security-Policy: frame-ancestors`.
- On connect the frame presents the frame token and its *visitor token* (kept in
  localStorage; signed {channel, visitor id, bound site user}). No or a bad visitor token
  gets a fresh visitor id. Every socket joins only the rooms of its own token's visitor id
  (and verified site user id), so a visitor never receives another visitor's thread, and
  history is read only for the customer that owns those identities.
- `window.Threadline.user` with `hash` = HMAC-SHA256(widget secret, id) makes the id a
  verified identity; a wrong hash is refused; `require_verified` refuses anonymous visitors.
- Visitor messages go through `app.usecases.ingest.receive()` like every other channel, read
  receipts through `ingest.apply_status()`; agents' replies reach the visitor through
  `outbox.SENT_HOOKS["webchat"]` (wired in app/wiring.py).

The package: tokens (signed tokens), visitors (who is connected, rate limits, their thread,
pushing replies), http (blueprint "widget": loader, frame, upload, files, demo), socket
(the /widget namespace's handlers), typing (indicators both ways).
"""
from __future__ import annotations

from app.web.widget.http import bp
from app.web.widget.socket import register_handlers
from app.web.widget.tokens import frame_token, visitor_token
from app.web.widget.typing import agent_typing
from app.web.widget.uploads import expire_uploads
from app.web.widget.visitors import (
    IP_CONNECTS,
    IP_MESSAGES,
    NAMESPACE,
    VISITOR_EVENTS,
    VISITOR_MESSAGES,
    on_reply_sent,
)

__all__ = ["bp", "register_handlers", "frame_token", "visitor_token", "agent_typing",
           "on_reply_sent", "NAMESPACE", "IP_CONNECTS", "IP_MESSAGES", "VISITOR_EVENTS",
           "VISITOR_MESSAGES", "expire_uploads"]


@bp.record
def _on_register(_state) -> None:
    register_handlers()
