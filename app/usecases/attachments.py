"""Attachments a payload only referenced (Telegram file_id, WhatsApp media id) are fetched
by a job after the message is committed, so a slow download never holds up ingest."""
from __future__ import annotations

import logging

from sqlalchemy import select

from connectors import get_connector
from connectors.base import ChannelError, TransientError

from app.infra.schemas import message_schema
from app.infra.logs import register_channel_secrets
from app.infra.models import Attachment, Channel, Message
from app.infra.events import record_event
from app.infra.state import config, db
from app.infra.storage import save_attachment

log = logging.getLogger(__name__)


def _hints(message: Message, attachment: Attachment) -> dict:
    """What the payload said of this media (WhatsApp keeps id, sha256, mime type in meta)."""
    for item in message.meta.get("media", []) or []:
        if isinstance(item, dict) and item.get("id") == attachment.remote_ref:
            return item
    return {"mime_type": attachment.content_type}


def fetch_attachments(message_id: int) -> int:
    """Download every referenced attachment of a message; returns how many were stored."""
    session = db.session
    message = session.get(Message, message_id)
    if message is None:
        return 0
    channel = session.get(Channel, message.channel_id)
    connector = get_connector(channel.kind)
    register_channel_secrets(connector, channel.settings)
    limit = int(config["storage"]["max_attachment_bytes"])
    pending = session.scalars(select(Attachment).where(
        Attachment.message_id == message_id, Attachment.remote_ref.is_not(None),
        Attachment.path.is_(None), Attachment.error.is_(None))).all()
    hints = {a.id: _hints(message, a) for a in pending}
    session.commit()  # no transaction stays open during downloads
    stored = 0
    for attachment in pending:
        try:
            data, content_type = connector.download(channel.settings, attachment.remote_ref,
                                                    limit, hints[attachment.id])
        except TransientError:
            raise  # the job fails; the message keeps its reference and can be fetched again
        except (ChannelError, NotImplementedError) as exc:
            attachment.error = str(exc)[:2000] or type(exc).__name__
            continue
        attachment.path = save_attachment(data, attachment.filename)
        attachment.size = len(data)
        attachment.content_type = content_type or attachment.content_type
        stored += 1
    session.flush()
    if pending:
        record_event(session, "message.updated", message_schema.dump(message),
                     message.conversation.channel_id)
    session.commit()
    return stored
