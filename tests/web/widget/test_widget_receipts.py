"""The site chat's read receipts are the channel's status reports: they go through
`app.usecases.ingest.apply_status` like every channel's, so its rule holds (a status only
moves forward: sent < delivered < read; a failure stays)."""
from __future__ import annotations

from app.infra.models import Message, Event
from app.infra.state import db
from tests.web.widget.test_widget import (  # noqa: F401  (fixtures)
    IN_PROCESS_SOCKETS,
    Visitor,
    _fresh_state,
    agent_reply,
    frame_token_for,
    webchat,
)


def _status(message_id: int) -> str:
    db.session.expire_all()
    return db.session.get(Message, message_id).status


@IN_PROCESS_SOCKETS
def test_receipts_go_through_apply_status_and_only_move_forward(backend, app, admin, webchat,
                                                                 monkeypatch):
    from app.usecases import ingest

    applied = []
    real = ingest.apply_status
    monkeypatch.setattr(ingest, "apply_status",
                        lambda session, channel, update: applied.append(update.status)
                        or real(session, channel, update))
    visitor = Visitor(app, frame_token_for(app, webchat))
    ack = visitor.send("Dzień dobry")
    reply = agent_reply(app, admin, ack["message"]["id"], "Witam!")
    assert reply.status == "sent"

    assert visitor.call("receipt", {"ids": [reply.id], "status": "read"})["changed"] == 1
    assert _status(reply.id) == "read" and applied == ["read"]
    updates = [e for e in db.session.query(Event).filter(Event.type == "message.updated")
               if e.payload["id"] == reply.id and e.payload["status"] == "read"]
    assert len(updates) == 1  # agents see the blue ticks live

    # a late "delivered" does not take the message back
    assert visitor.call("receipt", {"ids": [reply.id], "status": "delivered"})["changed"] == 0
    assert _status(reply.id) == "read" and applied == ["read", "delivered"]


@IN_PROCESS_SOCKETS
def test_a_receipt_never_revives_a_failed_message(backend, app, admin, webchat):
    visitor = Visitor(app, frame_token_for(app, webchat))
    ack = visitor.send("Привет")
    reply = agent_reply(app, admin, ack["message"]["id"], "Здравствуйте")
    failed = db.session.get(Message, reply.id)
    failed.status, failed.error = "failed", "test: the channel refused it"
    db.session.commit()
    assert visitor.call("receipt", {"ids": [reply.id], "status": "read"})["changed"] == 0
    assert _status(reply.id) == "failed"
