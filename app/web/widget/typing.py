"""Typing indicators between the site chat and the inbox: a visitor types (agents who see
the channel get `widget.typing` on /agents), an agent types (the visitor's widget shows
"… is typing")."""
from __future__ import annotations

from app.infra.events import ADMINS_ROOM, channel_room
from app.infra.events import NAMESPACE as AGENTS
from app.infra.extensions import socketio
from app.infra.models import Channel, Conversation
from app.infra.state import db
from app.usecases.ingest import open_conversation
from app.web.widget.visitors import NAMESPACE, Visitor, customer_for, identity_rooms


def visitor_typing(visitor: Visitor, typing: bool) -> None:
    customer = customer_for(db.session, visitor)
    if customer is None:
        return
    conversation = open_conversation(db.session, customer)
    socketio.emit("widget.typing", {"type": "widget.typing", "data": {
        "conversation_id": conversation.id if conversation else None,
        "customer_id": customer.id, "typing": typing}},
        namespace=AGENTS, to=[ADMINS_ROOM, channel_room(visitor.channel_id)])


def agent_typing(conversation_id: int, agent_name: str, typing: bool) -> None:
    """Tell the conversation's visitor that an agent types (called by the /agents `typing`
    handler in app/web/sockets.py; see docs/widget.md)."""
    conversation = db.session.get(Conversation, conversation_id)
    if conversation is None or socketio.server is None:
        return
    channel = db.session.get(Channel, conversation.channel_id)
    if channel is None or channel.kind != "webchat":
        return
    for room in identity_rooms(db.session, conversation.customer_id, channel.id):
        socketio.emit("typing", {"name": (agent_name or "").split()[0] if agent_name else None,
                                 "typing": bool(typing)}, namespace=NAMESPACE, to=room)
