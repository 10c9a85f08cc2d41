"""JSON API `/api/v1` (OpenAPI at /api/v1/openapi.json). Bearer tokens, or the inbox's
session cookie plus its CSRF token."""
from __future__ import annotations

from apiflask import APIBlueprint, HTTPTokenAuth, abort
from flask import request
from flask_login import current_user
from flask_wtf.csrf import CSRFError, validate_csrf
from wtforms import ValidationError

from app.domain.agents import agent_for_token

bp = APIBlueprint("api", __name__, url_prefix="/api/v1")


class TokenOrSessionAuth(HTTPTokenAuth):
    """A Bearer token, or the inbox's signed-in session (with its CSRF token on writes)."""

    def authenticate(self, auth, stored_password):
        token = getattr(auth, "token", None)
        if token:
            return agent_for_token(token)
        if not current_user.is_authenticated:
            return None
        if request.method in UNSAFE_METHODS:
            try:
                validate_csrf(request.headers.get("X-CSRFToken", ""))
            except (CSRFError, ValidationError):
                abort(400, "missing or invalid CSRF token (X-CSRFToken header)")
        return current_user._get_current_object()


UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
token_auth = TokenOrSessionAuth(scheme="Bearer",
                                description="`threadline token create --user <email>`")


def current_agent():
    return token_auth.current_user


from app.web.api import conversations, crm, customers, events, webhooks_out  # noqa: E402,F401  (routes)

from app.web.api import inbox  # noqa: E402,F401  (the live inbox: views, timeline, search, canned replies)

from app.web.api import uploads  # noqa: E402,F401  (files attached to replies)

from app.web.api import routing  # noqa: E402,F401  (availability, rules, activity, SLA: issue 17)
