"""JSON API `/api/v1` (OpenAPI at /api/v1/openapi.json). Bearer tokens, or the inbox's
session cookie plus its CSRF token (app/web/api/base.py); one module of routes per concern."""
from __future__ import annotations

from app.web.api.base import bp, current_agent, require_admin, token_auth  # noqa: F401

from app.web.api import conversations, crm, customers, events, webhooks_out  # noqa: E402,F401  (routes)

# the live inbox: its page data, the timeline, search, attachments, canned replies
from app.web.api import inbox, timeline, search, attachments, canned  # noqa: E402,F401

from app.web.api import uploads  # noqa: E402,F401  (files attached to replies)

from app.web.api import sessions  # noqa: E402,F401  (sign-out everywhere)

from app.web.api import settings  # noqa: E402,F401  (channels, agents, teams: the settings area)

from app.web.api import reports  # noqa: E402,F401  (reports from the rollup)

from app.web.api import routing  # noqa: E402,F401  (availability, rules, activity, SLA: issue 17)

from app.web.api import bots  # noqa: E402,F401  (outside bots: registration, hand-off, return)
from app.web.api import csat  # noqa: E402,F401  (feedback after a conversation: issue 21)
from app.web.api import kb  # noqa: E402,F401  (knowledge base: issue 18)
from app.web.api import notifications  # noqa: E402,F401  (the bell, the Mentions view)
from app.web.api import segments, campaigns  # noqa: E402,F401  (segments, campaigns: issue 21)
