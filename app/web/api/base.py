"""The `/api/v1` blueprint: its authentication (a Bearer token, or the inbox's session cookie
plus its CSRF token), the admin check, and the one translation of domain errors to HTTP."""
from __future__ import annotations

from apiflask import APIBlueprint, HTTPTokenAuth, abort
from apiflask.exceptions import HTTPError
from flask import current_app, request
from flask_login import current_user
from flask_wtf.csrf import CSRFError, validate_csrf
from wtforms import ValidationError

from app.domain.agents import agent_for_token
from app.domain.bots import ENDPOINTS as BOT_ENDPOINTS
from app.domain.bots import ROLE as BOT_ROLE
from app.domain.errors import DomainError
from app.infra.state import db

bp = APIBlueprint("api", __name__, url_prefix="/api/v1")


class TokenOrSessionAuth(HTTPTokenAuth):
    """A Bearer token, or the inbox's signed-in session (with its CSRF token on writes)."""

    def authenticate(self, auth, stored_password):
        token = getattr(auth, "token", None)
        if token:
            agent = agent_for_token(token)
            if agent is not None and agent.role == BOT_ROLE \
                    and request.endpoint not in BOT_ENDPOINTS:
                abort(403, "a bot's token acts only on the conversations of its channels")
            return agent
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


@bp.errorhandler(DomainError)
def domain_error(exc: DomainError):
    """Every refusal of a domain rule, the same way: the transaction rolled back, then the
    status, the message and {"json": {field: [message]}} (the API's usual error body)."""
    db.session.rollback()
    return current_app.error_callback(HTTPError(exc.status, exc.message,
                                                detail=exc.detail() or None))


def require_admin():
    """The caller, when an admin; else 403."""
    agent = current_agent()
    if not agent.is_admin:
        abort(403, "admins only")
    return agent


def _has_nul(value) -> bool:
    """A NUL character anywhere in a JSON value (iteratively: depth is no concern here)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def nul_location() -> tuple[str, str] | None:
    """Where a request carries a NUL character (PostgreSQL text cannot store one)."""
    for key, value in request.args.items(multi=True):
        if "\x00" in key or "\x00" in value:
            return "query", key.replace("\x00", "")
    if request.is_json:
        try:
            body = request.get_json(silent=True)
        except RecursionError:
            body = None
        if body is not None and _has_nul(body):
            return "json", "body"
    elif request.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        for key, value in request.form.items(multi=True):
            if "\x00" in key or "\x00" in value:
                return "form", key.replace("\x00", "")
        for key, upload in request.files.items(multi=True):
            if "\x00" in (upload.filename or ""):
                return "files", key
    elif request.mimetype.startswith("text/") and b"\x00" in request.get_data():
        return "body", "body"
    return None


@bp.before_request
def _refuse_nul_characters():
    where = nul_location()
    if where is not None:
        abort(422, "NUL characters (\\u0000) are not accepted",
              detail={where[0]: {where[1]: ["contains a NUL character"]}})
