"""The site chat's signed tokens (itsdangerous, with the app's secret key): the frame token
(channel + embedding origin, a week), the visitor token (channel + visitor id + bound site
user), file links and upload tokens (an hour)."""
from __future__ import annotations

from typing import Any

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer, URLSafeTimedSerializer

from app.infra.models import Channel

FRAME_MAX_AGE = 7 * 24 * 3600


def _timed(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt)


def _plain(salt: str) -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=salt)


def frame_token(channel: Channel, origin: str | None) -> str:
    return _timed("threadline.widget.frame").dumps({"c": channel.public_id, "o": origin or ""})


def read_frame_token(token: Any) -> tuple[str, str] | None:
    try:
        data = _timed("threadline.widget.frame").loads(str(token or ""), max_age=FRAME_MAX_AGE)
        return str(data["c"]), str(data["o"])
    except (BadSignature, KeyError, TypeError):
        return None


def visitor_token(public_id: str, visitor_id: str, user_id: str | None = None) -> str:
    return _plain("threadline.widget.visitor").dumps({"c": public_id, "v": visitor_id,
                                                       "u": user_id or ""})


def read_visitor_token(token: Any, public_id: str) -> tuple[str, str | None] | None:
    try:
        data = _plain("threadline.widget.visitor").loads(str(token or ""))
    except (BadSignature, TypeError):
        return None
    if not isinstance(data, dict) or data.get("c") != public_id or not data.get("v"):
        return None
    return str(data["v"]), (str(data["u"]) if data.get("u") else None)


def file_url(attachment_id: int, visitor_id: str) -> str:
    token = _plain("threadline.widget.file").dumps({"a": attachment_id, "v": visitor_id})
    return f"/widget/file/{token}"  # same origin as the frame; also built in jobs


def read_file_token(token: str) -> dict[str, Any]:
    """The file link's data; BadSignature when it is not ours."""
    return _plain("threadline.widget.file").loads(token)


def upload_ttl() -> float:
    """Seconds an upload waits for its message (storage.widget_upload_ttl); then it expires."""
    from app.infra.state import config

    return float(config["storage"]["widget_upload_ttl"])


def upload_token(data: dict[str, Any]) -> str:
    return _timed("threadline.widget.upload").dumps(data)


def read_upload_token(token: str) -> dict[str, Any] | None:
    try:
        return _timed("threadline.widget.upload").loads(str(token), max_age=upload_ttl())
    except BadSignature:
        return None
