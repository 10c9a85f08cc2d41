"""app.domain.notifications: @handles in any script, who a note mentions, and one
notification when a conversation is assigned in the transaction that brought its message."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.domain import notifications
from app.infra.models import Conversation, Message, Notification, utcnow
from app.infra.state import db
from tests import inbox_helpers as h


def test_handles_in_cyrillic_polish_and_emails():
    text = "@Анна, глянь; (@łukasz.) и @irina@example.com — не e-mail@chunk, не @_x"
    assert notifications.mention_handles(text) == {"анна", "łukasz", "irina@example.com"}
    assert notifications.mention_handles("") == set()


@pytest.fixture
def setup(ctx, admin, telegram_api):
    return h.channels(telegram_api)


def test_mentioned_agents_by_first_name_local_part_or_id(setup):
    anna = h.agent("anna.k@example.com", "Анна Ковальская", ["Support"])
    lukasz = h.agent("lz@example.com", "Łukasz Zieliński", ["Sales"])
    gone = h.agent("gone@example.com", "Gone", ["Support"])
    gone.active = False
    db.session.commit()
    found = notifications.mentioned_agents(db.session, "@АННА и @Łukasz", ids=[gone.id, "x"])
    assert [a.id for a in found] == [anna.id, lukasz.id]
    assert [a.id for a in notifications.mentioned_agents(db.session, "@anna.k", ids=[lukasz.id])] \
        == [anna.id, lukasz.id]
    assert notifications.mentioned_agents(db.session, "нет упоминаний") == []


def test_assigned_with_its_first_message_is_one_notification(setup):
    support, _sales = setup
    anna = h.agent("anna@example.com", "Анна", ["Support"])
    conversation = h.conversation_of(h.inbound(support, 990, "Первое", "Вера"))
    conversation = db.session.get(Conversation, conversation.id)
    db.session.add(Message(conversation_id=conversation.id, customer_id=conversation.customer_id,
                           channel_id=support.id, direction="in", text="Второе",
                           status="received", created_at=utcnow()))
    conversation.assignee_id = anna.id
    db.session.commit()
    rows = db.session.scalars(select(Notification).where(Notification.agent_id == anna.id)).all()
    assert [(n.kind, n.conversation_id) for n in rows] == [("assigned", conversation.id)]
    # the next message in her conversation is news of its own
    h.inbound(support, 990, "Третье", "Вера")
    kinds = db.session.scalars(select(Notification.kind).where(Notification.agent_id == anna.id)
                               .order_by(Notification.id)).all()
    assert kinds == ["assigned", "message"]
