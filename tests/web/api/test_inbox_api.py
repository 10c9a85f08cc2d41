"""The inbox's API: views and counts, keyset list, timeline, actions, bulk, search, canned
replies, mentions, profile and password change, translations."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.infra.models import Agent, Message, utcnow
from app.infra.state import db
from tests import inbox_helpers as h
from tests.conftest import SCALE_OUT, run_jobs


@pytest.fixture
def setup(ctx, admin, admin_token, telegram_api):
    support, sales = h.channels(telegram_api)
    return support, sales


def test_views_counts_filters_and_keyset_pages(app, api, setup):
    support, sales = setup
    for i in range(7):
        h.inbound(support if i % 2 else sales, 600 + i, f"вопрос номер {i}", f"Клиент {i}")
    first = api.get("/conversations?limit=3").json
    assert len(first["items"]) == 3 and first["next_cursor"]
    second = api.get(f"/conversations?limit=3&cursor={first['next_cursor']}").json
    third = api.get(f"/conversations?limit=3&cursor={second['next_cursor']}").json
    ids = [c["id"] for page in (first, second, third) for c in page["items"]]
    assert len(ids) == 7 == len(set(ids)) and third["next_cursor"] is None
    stamps = [c["last_activity_at"] for page in (first, second, third) for c in page["items"]]
    assert stamps == sorted(stamps, reverse=True)
    assert api.get("/conversations?cursor=bm9wZQ").status_code == 422

    target = ids[0]
    me = api.get("/inbox/bootstrap").json["me"]
    teams = {t["name"]: t["id"] for t in api.get("/inbox/bootstrap").json["teams"]}
    patched = api.patch(f"/conversations/{target}", json={
        "assignee_id": me["id"], "team_id": teams["Sales"], "labels": ["vip", " vip ", "опт"],
        "priority": "urgent"})
    assert patched.status_code == 200, patched.json
    assert patched.json["labels"] == ["vip", "опт"]
    counts = api.get("/inbox/views").json["counts"]
    assert counts["open"] == 7 and counts["mine"] == 1 and counts["unassigned"] == 6
    assert counts[f"team:{teams['Sales']}"] == 1 and counts["label:опт"] == 1
    assert counts[f"channel:{support.id}"] == 3 and counts[f"channel:{sales.id}"] == 4
    assert [c["id"] for c in api.get("/conversations?label=опт").json["items"]] == [target]
    assert [c["id"] for c in api.get("/conversations?assignee=me").json["items"]] == [target]
    assert [c["id"] for c in api.get(f"/conversations?team_id={teams['Sales']}").json["items"]] == [target]
    # reading clears the unread mark and the count follows
    assert api.post(f"/conversations/{target}/read").json["unread_count"] == 0
    views = api.get("/inbox/views").json
    assert views["counts"]["mine"] == 0
    # totals: every conversation of the view, read or not (the sidebar shows both)
    assert views["totals"]["mine"] == 1 and views["totals"]["open"] == 7
    assert views["totals"][f"channel:{sales.id}"] == 4 and views["totals"]["label:опт"] == 1
    # invalid input: 422 with the field
    bad = api.patch(f"/conversations/{target}", json={"priority": "whenever"})
    assert bad.status_code == 422 and "priority" in bad.json["detail"]["json"]
    bad = api.patch(f"/conversations/{target}", json={"assignee_id": 424242})
    assert bad.status_code == 422 and "assignee_id" in bad.json["detail"]["json"]
    bad = api.patch(f"/conversations/{target}", json={"status": "snoozed"})
    assert bad.status_code == 422 and "snoozed_until" in bad.json["detail"]["json"]
    until = (utcnow() + timedelta(hours=3)).isoformat()
    assert api.patch(f"/conversations/{target}", json={"status": "snoozed", "snoozed_until": until}).json["status"] == "snoozed"
    assert [c["id"] for c in api.get("/conversations?status=snoozed").json["items"]] == [target]
    # bulk: resolve three at once
    bulk = api.post("/conversations/bulk", json={"ids": ids[1:4], "status": "resolved"})
    assert bulk.status_code == 200 and {c["status"] for c in bulk.json["items"]} == {"resolved"}
    assert len(api.get("/conversations?status=resolved").json["items"]) == 3
    assert api.post("/conversations/bulk", json={"ids": []}).status_code == 422
    assert api.post("/conversations/bulk", json={"ids": [ids[4]]}).status_code == 422


def test_timeline_spans_channels_and_earlier_conversations(app, api, setup):
    support, sales = setup
    first = h.inbound(support, 700, "Первое обращение", "Вера")
    api.patch(f"/conversations/{first.conversation_id}", json={"status": "resolved"})
    second = h.inbound(support, 700, "Второе обращение", "Вера")
    assert second.conversation_id != first.conversation_id
    timeline = api.get(f"/conversations/{second.conversation_id}/timeline").json
    assert [c["id"] for c in timeline["conversations"]] == [first.conversation_id, second.conversation_id]
    assert [m["text"] for m in timeline["messages"]] == ["Первое обращение", "Второе обращение"]
    assert timeline["default_channel_id"] == support.id
    assert timeline["reply_channels"][0]["kind"] == "telegram"
    assert timeline["customer"]["name"] == "Вера"


def test_note_is_never_sent_and_mentions_notify(app, api, setup, telegram_api):
    support, _ = setup
    h.agent("irina@example.com", "Ирина Соколова", ["Support"])
    message = h.inbound(support, 800, "Нужна помощь", "Пётр")
    conversation_id = message.conversation_id
    note = api.post(f"/conversations/{conversation_id}/notes", json={"text": "@irina глянь, пожалуйста"})
    assert note.status_code == 201 and note.json["direction"] == "note"
    # a reply afterwards is sent; the note before it never was
    reply = api.post(f"/conversations/{conversation_id}/messages", json={"text": "Уже смотрим"})
    assert reply.status_code == 201
    run_jobs(app)
    sent = [c.params["text"] for c in telegram_api.wait_for("sendMessage", 1)]
    assert sent == ["Уже смотрим"]
    db.session.expire_all()
    stored = db.session.get(Message, note.json["id"])
    assert stored.status == "received" and stored.external_id is None
    irina = db.session.scalar(select(Agent).where(Agent.email == "irina@example.com"))
    assert stored.meta["mentions"] == [irina.id]


def test_search_finds_customers_and_messages_in_cyrillic_and_latin(app, api, setup):
    support, sales = setup
    h.inbound(support, 901, "Здравствуйте! Где мой заказ? Трек-номер не пришёл", "Анна Смирнова")
    h.inbound(sales, 902, "Do you have the linen shirt in navy?", "Emily Carter")
    h.inbound(sales, 903, "Zażółć gęślą jaźń — paczka", "Łukasz Zieliński")
    found = api.get("/search?q=заказ").json
    assert [m["message"]["text"][:12] for m in found["messages"]] == ["Здравствуйте"]
    assert "заказ" in found["messages"][0]["snippet"]
    assert api.get("/search?q=ЗАКАЗ").json["messages"][0]["customer"]["name"] == "Анна Смирнова"
    assert [c["name"] for c in api.get("/search?q=смирн").json["customers"]] == ["Анна Смирнова"]
    assert [c["name"] for c in api.get("/search?q=emily").json["customers"]] == ["Emily Carter"]
    linen = api.get("/search?q=Linen Navy").json["messages"]
    assert [m["customer"]["name"] for m in linen] == ["Emily Carter"]
    # telegram handle (user id) finds the customer
    handle = api.get("/search?q=902").json["customers"]
    assert [c["name"] for c in handle] == ["Emily Carter"]
    assert api.get("/search?q=").status_code == 422
    assert api.get("/search?q=nothinglikethis").json == {
        "query": "nothinglikethis", "terms": ["nothinglikethis"], "customers": [],
        "customer_conversations": {}, "customer_activity": {}, "messages": [],
        "next_cursor": None}


def test_canned_replies_are_managed_by_admins(app, api, setup):
    created = api.post("/canned-replies", json={"shortcut": "hello", "title": "Greeting",
                                                "text": "Здравствуйте, {{customer.first_name}}! Это {{agent.name}}."})
    assert created.status_code == 201
    assert api.post("/canned-replies", json={"shortcut": "hello", "text": "x"}).status_code == 422
    bad = api.post("/canned-replies", json={"shortcut": "has space", "text": "x"})
    assert bad.status_code == 422 and "shortcut" in bad.json["detail"]["json"]
    agent = h.agent("plain@example.com", "Plain Agent", ["Support"])
    client = app.test_client()
    auth = {"Authorization": f"Bearer {h.token(agent)}"}
    assert client.get("/api/v1/canned-replies", headers=auth).json["items"][0]["shortcut"] == "hello"
    assert client.post("/api/v1/canned-replies", json={"shortcut": "x", "text": "y"},
                       headers=auth).status_code == 403
    assert client.delete(f"/api/v1/canned-replies/{created.json['id']}", headers=auth).status_code == 403
    changed = api.patch(f"/canned-replies/{created.json['id']}", json={"title": "Hi"})
    assert changed.json["title"] == "Hi"


def _strings(page: str) -> dict:
    import json

    return json.loads(re.search(r'<script type="application/json" id="i18n">(.*?)</script>',
                                page, re.S).group(1))


def _login(client, email, password):
    h.reset_login_limit()  # the limit counts per address; every test comes from 127.0.0.1
    response = client.get("/login")
    page = response.get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, (response.status_code, response.headers.get("Location"))
    csrf = match.group(1)
    return client.post("/login", data={"email": email, "password": password, "csrf_token": csrf})


def test_password_change_and_russian_interface(app):
    # no app context held across requests: Flask-Login caches the user on it
    with app.app_context():
        h.agent("olga@example.com", "Ольга", ["Support"])
    client = app.test_client()
    assert _login(client, "olga@example.com", h.PASSWORD).status_code == 302
    page = client.get("/account").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    wrong = client.post("/account", data={"csrf_token": csrf, "action": "password",
                                          "current_password": "nope", "new_password": "new-password-9",
                                          "confirm_password": "new-password-9"})
    assert wrong.status_code == 400
    no_csrf = client.post("/account", data={"action": "password", "current_password": h.PASSWORD,
                                            "new_password": "new-password-9",
                                            "confirm_password": "new-password-9"})
    assert no_csrf.status_code == 400
    ok = client.post("/account", data={"csrf_token": csrf, "action": "password",
                                       "current_password": h.PASSWORD, "new_password": "new-password-9",
                                       "confirm_password": "new-password-9"})
    assert ok.status_code == 302
    fresh = app.test_client()
    assert _login(fresh, "olga@example.com", h.PASSWORD).status_code == 401
    assert _login(fresh, "olga@example.com", "new-password-9").status_code == 302
    # language: the browser's first, then the profile's
    inbox = fresh.get("/", headers={"Accept-Language": "ru-RU,ru;q=0.9"}).get_data(as_text=True)
    assert '<html lang="ru">' in inbox and "Выйти" in inbox
    assert _strings(inbox)["all_open"] == "Все открытые"
    client_csrf = re.search(r'name="csrf-token" content="([^"]+)"', inbox).group(1)
    assert fresh.patch("/api/v1/inbox/me", json={"locale": "en"},
                       headers={"X-CSRFToken": client_csrf}).status_code == 200
    english = fresh.get("/", headers={"Accept-Language": "ru-RU,ru;q=0.9"}).get_data(as_text=True)
    assert '<html lang="en">' in english and _strings(english)["all_open"] == "All open"
    assert fresh.patch("/api/v1/inbox/me", json={"locale": "de"},
                       headers={"X-CSRFToken": client_csrf}).status_code == 422
    # Polish: from the account page's picker, over a Russian browser
    account = fresh.get("/account").get_data(as_text=True)
    assert '<option value="pl"' in account and "Polski" in account
    form_csrf = re.search(r'name="csrf_token" value="([^"]+)"', account).group(1)
    saved = fresh.post("/account", data={"csrf_token": form_csrf, "action": "locale", "locale": "pl"})
    assert saved.status_code in (200, 302)
    polish = fresh.get("/", headers={"Accept-Language": "ru-RU,ru;q=0.9"}).get_data(as_text=True)
    assert '<html lang="pl">' in polish and "Wyloguj" in polish
    assert _strings(polish)["all_open"] == "Wszystkie otwarte"
    # a Polish browser with no choice made gets Polish too
    assert fresh.patch("/api/v1/inbox/me", json={"locale": None},
                       headers={"X-CSRFToken": client_csrf}).status_code == 200
    browser_pl = fresh.get("/", headers={"Accept-Language": "pl-PL,pl;q=0.9"}).get_data(as_text=True)
    assert '<html lang="pl">' in browser_pl


@pytest.mark.parametrize("backend", SCALE_OUT)
def test_postgres_search_finds_a_rare_word_without_walking_every_message(backend, ctx, setup,
                                                                         monkeypatch):
    """PostgreSQL walks the primary key for "newest first" whatever the word; for a rare
    word that is a scan of the whole table, so the search gives the walk a timeout and then
    takes the full-text index (app/search.py)."""
    from sqlalchemy import text

    from app.domain import search

    support, _ = setup
    seed = h.inbound(support, 990, "Самовар из Тулы, zamówienie 1", "Ольга")
    columns = [c for c in db.session.scalars(text(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'messages' "
        "AND column_name NOT IN ('id', 'uuid', 'text', 'external_id', 'search_stems') "
        "ORDER BY ordinal_position"))]
    listed = ", ".join(columns)
    assert search.stems("доставка заказа номер 7") == "доставк заказ номер 7"
    db.session.execute(text(
        f"INSERT INTO messages ({listed}, uuid, text, search_stems) SELECT {listed}, "
        f"gen_random_uuid(), 'доставка заказа номер ' || g, 'доставк заказ номер ' || g "
        f"FROM messages, generate_series(1, 40000) g "
        f"WHERE messages.id = :seed"), {"seed": seed.id})
    db.session.execute(text("ANALYZE messages"))
    db.session.commit()
    # a walk that can never finish in time: the rare word must come from the index
    monkeypatch.setattr(search, "NEWEST_WALK_TIMEOUT_MS", 1)
    rare = search.search_messages(db.session, "самовар", None, limit=20)
    assert [m.id for m in rare] == [seed.id]
    # the timeout ended with the walk: the transaction goes on without it
    assert db.session.scalar(text("SHOW statement_timeout")) == "0"
    monkeypatch.setattr(search, "NEWEST_WALK_TIMEOUT_MS", 100)
    common = search.search_messages(db.session, "доставка", None, limit=5)
    assert [m.text for m in common] == [f"доставка заказа номер {n}" for n in range(40000, 39995, -1)]
    db.session.rollback()
