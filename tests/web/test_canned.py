"""The admins' canned-replies page (`/admin/canned-replies`) through the real login form:
list, add, edit, delete, the same rules as the API; agents get 403, every write needs the
CSRF token; the page speaks Russian too. And the API's edit/delete in the OpenAPI document."""
from __future__ import annotations

import re

from sqlalchemy import select

from app.infra.models import CannedReply
from app.infra.state import db
from tests import inbox_helpers as h
from tests.web.api.test_inbox_api import _login

PAGE = "/admin/canned-replies"


def _csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _replies(app) -> dict[str, tuple[str, str]]:
    with app.app_context():
        found = {r.shortcut: (r.title, r.text) for r in db.session.scalars(select(CannedReply))}
        db.session.commit()
        return found


def test_admin_lists_adds_edits_and_deletes(app):
    with app.app_context():
        h.agent("boss@example.com", "Boss Admin", ["Support"], role="admin")
    client = app.test_client()
    assert client.get(PAGE).status_code == 302  # signed out: to the login page
    assert _login(client, "boss@example.com", h.PASSWORD).status_code == 302
    inbox = client.get("/").get_data(as_text=True)
    assert f'href="{PAGE}"' in inbox  # the inbox header links admins to it
    page = client.get(PAGE)
    assert page.status_code == 200 and "No canned replies yet." in page.get_data(as_text=True)
    csrf = _csrf(page.get_data(as_text=True))

    text = "Здравствуйте, {{customer.first_name}}! Это {{agent.name}}."
    added = client.post(PAGE, data={"csrf_token": csrf, "shortcut": "/hello ", "title": "Greeting",
                                    "text": text})
    assert added.status_code == 302
    assert _replies(app) == {"hello": ("Greeting", text)}  # the leading slash is dropped
    listed = client.get(PAGE).get_data(as_text=True)
    assert "Canned reply /hello added." in listed and "<b>/hello</b>" in listed
    assert "{{customer.first_name}}" in listed  # shown as typed, not rendered
    with app.app_context():
        reply_id = db.session.scalar(select(CannedReply.id))
        db.session.commit()

    # the API's rules: unique shortcut, letters/digits/_/- only, a text
    taken = client.post(PAGE, data={"csrf_token": csrf, "shortcut": "hello", "text": "again"})
    assert taken.status_code == 422 and "already in use" in taken.get_data(as_text=True)
    bad = client.post(PAGE, data={"csrf_token": csrf, "shortcut": "two words", "title": "Kept",
                                  "text": ""})
    body = bad.get_data(as_text=True)
    assert bad.status_code == 422 and "letters, digits" in body and "text is required" in body
    assert 'value="Kept"' in body  # what the admin typed stays in the form
    assert set(_replies(app)) == {"hello"}

    changed = client.post(f"{PAGE}/{reply_id}", data={
        "csrf_token": csrf, "shortcut": "hi", "title": "Hi", "text": "Привет, {{customer.name}}"})
    assert changed.status_code == 302
    assert _replies(app) == {"hi": ("Hi", "Привет, {{customer.name}}")}
    client.post(PAGE, data={"csrf_token": csrf, "shortcut": "bye", "text": "Пока"})
    clash = client.post(f"{PAGE}/{reply_id}", data={"csrf_token": csrf, "shortcut": "bye", "text": "x"})
    assert clash.status_code == 422 and "<details class=\"canned\" data-shortcut=\"hi\" open>" in \
        clash.get_data(as_text=True)
    assert _replies(app)["hi"] == ("Hi", "Привет, {{customer.name}}")

    # no CSRF token: refused, nothing changes
    assert client.post(f"{PAGE}/{reply_id}/delete").status_code == 400
    assert client.post(PAGE, data={"shortcut": "nocsrf", "text": "x"}).status_code == 400
    assert set(_replies(app)) == {"hi", "bye"}
    deleted = client.post(f"{PAGE}/{reply_id}/delete", data={"csrf_token": csrf})
    assert deleted.status_code == 302
    assert set(_replies(app)) == {"bye"}
    assert client.post(f"{PAGE}/{reply_id}/delete", data={"csrf_token": csrf}).status_code == 404


def test_agents_get_403_and_no_link(app):
    with app.app_context():
        h.agent("plain@example.com", "Plain Agent", ["Support"])
        db.session.add(CannedReply(shortcut="hello", text="Hi"))
        db.session.commit()
        reply_id = db.session.scalar(select(CannedReply.id))
        db.session.commit()
    client = app.test_client()
    assert _login(client, "plain@example.com", h.PASSWORD).status_code == 302
    inbox = client.get("/").get_data(as_text=True)
    assert PAGE not in inbox
    csrf = _csrf(inbox)
    assert client.get(PAGE).status_code == 403
    assert client.post(PAGE, data={"csrf_token": csrf, "shortcut": "x", "text": "y"}).status_code == 403
    assert client.post(f"{PAGE}/{reply_id}", data={"csrf_token": csrf, "shortcut": "x",
                                                   "text": "y"}).status_code == 403
    assert client.post(f"{PAGE}/{reply_id}/delete", data={"csrf_token": csrf}).status_code == 403
    assert _replies(app) == {"hello": ("", "Hi")}


def test_page_in_russian(app):
    with app.app_context():
        h.agent("olga@example.com", "Ольга", ["Support"], role="admin")
    client = app.test_client()
    assert _login(client, "olga@example.com", h.PASSWORD).status_code == 302
    page = client.get(PAGE, headers={"Accept-Language": "ru-RU,ru;q=0.9"}).get_data(as_text=True)
    assert '<html lang="ru">' in page
    for text in ("Шаблоны ответов", "Добавить шаблон ответа", "Сокращение", "Шаблонов пока нет."):
        assert text in page, text
    csrf = _csrf(page)
    client.post(PAGE, data={"csrf_token": csrf, "shortcut": "привет", "text": "Здравствуйте!"},
                headers={"Accept-Language": "ru"})
    listed = client.get(PAGE, headers={"Accept-Language": "ru"}).get_data(as_text=True)
    assert "Шаблон /привет добавлен." in listed and "Удалить" in listed


def test_api_edits_and_deletes_documented(app, api, admin_token):
    created = api.post("/canned-replies", json={"shortcut": "hello", "text": "Hi"}).json
    client = app.test_client()
    auth = {"Authorization": f"Bearer {admin_token}"}
    assert client.patch(f"/api/v1/canned-replies/{created['id']}", json={"shortcut": "bad one"},
                        headers=auth).status_code == 422
    assert client.delete(f"/api/v1/canned-replies/{created['id']}", headers=auth).status_code == 204
    assert client.delete(f"/api/v1/canned-replies/{created['id']}", headers=auth).status_code == 404
    assert api.get("/canned-replies").json == {"items": []}
    spec = client.get("/api/v1/openapi.json").json
    ops = spec["paths"]["/api/v1/canned-replies/{reply_id}"]
    assert {"patch", "delete"} <= set(ops)
    assert ops["delete"]["summary"] == "Delete a canned reply (admins)"

