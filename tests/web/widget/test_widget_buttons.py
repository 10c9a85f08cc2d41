"""Site chat quick replies: an outbound message's buttons reach the visitor with it; a press
comes back as a message carrying the button's id (meta["button_id"])."""
from __future__ import annotations

from sqlalchemy import select

from app.infra.models import Message
from app.infra.state import db
from app.usecases.outbox import enqueue_reply
from tests.conftest import run_jobs, wait_until
from tests.web.widget.test_widget import (  # noqa: F401
    IN_PROCESS_SOCKETS,
    Visitor,
    _fresh_state,
    frame_token_for,
    webchat,
)


@IN_PROCESS_SOCKETS
def test_buttons_reach_the_visitor_and_a_press_carries_its_id(backend, app, admin, webchat):  # noqa: F811
    visitor = Visitor(app, frame_token_for(app, webchat))
    ack = visitor.send("Ile trwa dostawa?")
    conversation = db.session.get(Message, ack["message"]["id"]).conversation
    enqueue_reply(db.session, conversation, None, "2–3 dni. Czy to pomogło?",
                  meta={"bot": "answer_bot", "buttons": [{"id": "kb:4:yes", "title": "Tak"},
                                                         {"id": "kb:4:no", "title": "Nie"}]})
    db.session.commit()
    run_jobs(app)
    pushed = wait_until(lambda: [m for m in visitor.events("thread.message")
                                 if m["direction"] == "out"], timeout=5, message="pushed")
    assert pushed[0]["buttons"] == [{"id": "kb:4:yes", "title": "Tak"},
                                    {"id": "kb:4:no", "title": "Nie"}]
    assert pushed[0]["bot"] is True
    press = visitor.send("Nie", button_id="kb:4:no", client_id="press-1")
    assert press["ok"], press
    db.session.expire_all()
    stored = db.session.scalar(select(Message).where(Message.id == press["message"]["id"]))
    assert stored.text == "Nie" and stored.meta["button_id"] == "kb:4:no"
    # the history a reconnecting widget gets still has the buttons of the bot's message
    history = visitor.call("history", {"after": 0})
    assert [m["buttons"] for m in history["messages"] if m["direction"] == "out"][0][1]["id"] \
        == "kb:4:no"


@IN_PROCESS_SOCKETS
def test_search_answers_box_finds_published_articles_in_the_visitors_words(backend, app, webchat):  # noqa: F811
    from app.domain import kb

    kb.create(db.session, {"title": "Czas dostawy", "language": "pl", "published": True,
                           "short_answer": "Kurier dostarcza w 1–2 dni.", "body": "Dostawa kurierem."})
    kb.create(db.session, {"title": "Сроки доставки", "language": "ru", "published": True,
                           "short_answer": "2–5 дней.", "body": "Доставка в Казань."})
    kb.create(db.session, {"title": "Dostawa dronem", "language": "pl", "body": "Szkic."})
    db.session.commit()
    visitor = Visitor(app, frame_token_for(app, webchat))      # the widget speaks Polish
    found = visitor.call("answers", {"q": "ile trwa dostawy"})
    assert found["ok"] and [a["title"] for a in found["items"]] == ["Czas dostawy"]
    assert found["items"][0]["summary"] == "Kurier dostarcza w 1–2 dni."
    assert found["items"][0]["url"].startswith("/help/pl/")
    russian = visitor.call("answers", {"q": "доставка в Казань"})   # Cyrillic: Russian articles
    assert [a["title"] for a in russian["items"]] == ["Сроки доставки"]
    assert visitor.call("answers", {"q": ""})["items"] == []
