"""Attachments of messages, downloaded by agents who may see the conversation."""
from __future__ import annotations

from pathlib import Path

from apiflask import abort
from flask import send_file

from app.domain.access import can_see_conversation
from app.infra.models import Attachment, Message
from app.infra.state import db
from app.web.api.base import bp, current_agent, token_auth


@bp.get("/attachments/<int:attachment_id>")
@bp.auth_required(token_auth)
@bp.doc(summary="Download an attachment (inline for images with ?inline=1)")
def download_attachment(attachment_id: int):
    from flask import request

    from app.infra.storage import attachment_path

    attachment = db.session.get(Attachment, attachment_id)
    if attachment is None:
        abort(404, "attachment not found")
    message = db.session.get(Message, attachment.message_id)
    if message is None or not can_see_conversation(current_agent(), message.conversation):
        abort(404, "attachment not found")
    if not attachment.path:
        abort(404, attachment.error or "the attachment has not been downloaded yet")
    path: Path = attachment_path(attachment.path)
    inline = request.args.get("inline") == "1" and attachment.content_type.startswith("image/") \
        and attachment.content_type != "image/svg+xml"
    response = send_file(path, mimetype=attachment.content_type if inline
                         else "application/octet-stream",
                         as_attachment=not inline, download_name=attachment.filename)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response

