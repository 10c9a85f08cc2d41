"""The widget in headless Chromium, embedded in a page served from another loopback port
(another origin) and talking to a real `threadline serve`."""
from __future__ import annotations

import functools
import http.server
import json
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.infra.models import Customer, InboundEvent, Message
from app.infra.state import db
from connectors.webchat import user_hash
from tests.conftest import OUTPUT, AgentSocket, free_port, login_session, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SECRET = "browser-widget-secret"


class HostSite:
    """A customer's site: a tiny http.server on its own loopback port (its own origin)."""

    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def page(self, name: str, widget_url: str, channel: str, user: dict | None = None,
             lang: str = "pl") -> str:
        setup = f"<script>window.Threadline = {{user: {json.dumps(user)}}};</script>" if user else ""
        (self.root / name).write_text(f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><title>Sklep z kawą</title>
<style>button {{ font-size: 40px !important; color: red !important; }} * {{ display: block; }}</style>
</head><body><h1>Sklep z kawą</h1><p>Espresso 39 zł</p>{setup}
<script src="{widget_url}/widget.js" data-channel="{channel}" async></script>
</body></html>""", encoding="utf-8")
        return f"{self.origin}/{name}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def sites(tmp_path):
    made: list[HostSite] = []

    def make() -> HostSite:
        root = tmp_path / f"site{len(made)}"
        root.mkdir()
        made.append(HostSite(root))
        return made[-1]

    yield make
    for site in made:
        site.stop()


def webchat_channel(allowed: str):
    from app.domain.channels import add_channel

    channel = add_channel("webchat", "Sklep", {"allowed_origins": allowed, "secret": SECRET})
    db.session.commit()
    return channel


def read(fn):
    """Read from the database and end the transaction at once: on SQLite an open test
    transaction would hold the lock the server's writers wait for."""
    try:
        return fn()
    finally:
        db.session.commit()


def shot(page, name: str) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / name))


def open_widget(page):
    """Open the chat (after a reload it may be open already: the widget remembers)."""
    page.set_default_timeout(10000)
    frame = page.frame_locator("iframe[data-threadline]")
    frame.locator("body[data-connected]").wait_for()
    if frame.locator("#tl-launcher").is_visible():
        frame.locator("#tl-launcher").click()
    frame.locator("#tl-panel").wait_for()
    return frame


@pytest.mark.parametrize("backend", ["sqlite"])
def test_visitor_and_agent_talk_live_and_a_reload_keeps_the_thread(
        backend, ctx, admin, start_server, sites, browser):
    site = sites()
    public_id = read(lambda: webchat_channel(site.origin).public_id)
    server = start_server()
    url = site.page("index.html", server.url, public_id)
    first_name = read(lambda: admin.name.split()[0])
    agent = login_session(server.url, "admin@example.com", "correct horse battery")
    socket = AgentSocket(server.url, agent)
    page = browser.new_context(viewport={"width": 1100, "height": 800}).new_page()
    try:
        page.goto(url + "?utm_source=newsletter&utm_campaign=jesien&fbclid=fb123")
        frame = open_widget(page)
        # the host page's hostile CSS does not reach the widget; its texts follow <html lang>
        assert frame.locator("#tl-send").inner_text() == "Wyślij"
        assert frame.locator("#tl-send").evaluate("b => getComputedStyle(b).color") != "rgb(255, 0, 0)"
        hostile = '<img src=x onerror="window.parent.pwned=1">Dzień dobry!'
        frame.locator("#tl-input").fill(hostile)
        frame.locator("#tl-input").press("Enter")
        mine = frame.locator(".tl-msg.tl-in").first
        mine.locator(".tl-text").wait_for()
        assert mine.locator(".tl-text").inner_text() == hostile  # shown as text
        assert mine.locator("img").count() == 0
        wait_until(lambda: frame.locator(".tl-msg.tl-in[data-status=received]").count() == 1,
                   timeout=10, message="delivery status")

        created = socket.wait_for("message.created", lambda d: d["data"]["direction"] == "in")
        assert created["data"]["text"] == hostile
        conversation_id = created["data"]["conversation_id"]
        source = read(lambda: db.session.scalar(select(Customer)).source)
        assert source["utm"] == {"source": "newsletter", "campaign": "jesien"}
        assert source["ad"] == {"fbclid": "fb123"}

        # the visitor closes the chat; the agent answers; the launcher shows a badge
        frame.locator("#tl-close").click()
        reply = agent.post(f"{server.url}/api/v1/conversations/{conversation_id}/messages",
                           json={"text": "Dzień dobry! <b>Mamy</b> espresso."})
        assert reply.status_code == 201, reply.text
        badge = frame.locator("#tl-badge")
        badge.wait_for(state="visible", timeout=10000)
        assert badge.inner_text() == "1"
        shot(page, "widget-badge.png")
        frame.locator("#tl-launcher").click()
        answer = frame.locator(".tl-msg.tl-out .tl-text")
        assert answer.inner_text() == "Dzień dobry! <b>Mamy</b> espresso."
        assert frame.locator(".tl-msg.tl-out .tl-author").inner_text() == first_name
        assert badge.is_hidden()
        # opening the chat reads the answer: the agent sees it marked read
        socket.wait_for("message.updated", lambda d: d["data"]["id"] == reply.json()["id"]
                        and d["data"]["status"] == "read")
        shot(page, "widget-conversation.png")

        # a reload (or a second tab) continues the same thread
        page.reload()
        frame = open_widget(page)
        assert frame.locator("#tl-launcher").is_hidden()  # it stayed open
        frame.locator(".tl-msg.tl-out").wait_for()
        assert frame.locator(".tl-msg .tl-text").all_inner_texts() == [
            hostile, "Dzień dobry! <b>Mamy</b> espresso."]
        second_tab = page.context.new_page()
        second_tab.goto(url)
        tab_frame = open_widget(second_tab)
        tab_frame.locator("#tl-input").fill("Z drugiej karty")
        tab_frame.locator("#tl-input").press("Enter")
        # the first tab sees what the second one wrote
        frame.get_by_text("Z drugiej karty").wait_for(timeout=10000)
        assert page.evaluate("window.pwned") is None
        assert read(lambda: db.session.scalar(select(func.count(Customer.id)))) == 1
        shot(page, "widget-after-reload.png")
    finally:
        socket.close()
    assert "Traceback" not in server.log()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_disallowed_origin_and_forged_hash_are_rejected(
        backend, ctx, admin, start_server, sites, browser):
    allowed, other = sites(), sites()
    public_id = read(lambda: webchat_channel(allowed.origin).public_id)
    server = start_server()
    page = browser.new_page()
    refused_frames = []
    page.on("response", lambda r: refused_frames.append(r.status) if "/widget/frame" in r.url else None)
    page.goto(other.page("index.html", server.url, public_id))
    wait_until(lambda: refused_frames, timeout=10, message="frame request")
    assert refused_frames == [403]
    time.sleep(0.5)
    frame = page.frame_locator("iframe[data-threadline]")
    assert frame.locator("#tl-launcher").count() == 0
    shot(page, "widget-refused-origin.png")

    forged = allowed.page("forged.html", server.url, public_id,
                          user={"id": "42", "name": "Mallory", "hash": user_hash("guess", "42")})
    page.goto(forged)
    frame = page.frame_locator("iframe[data-threadline]")
    frame.locator("body[data-refused=invalid_user_hash]").wait_for(timeout=10000)
    frame.locator("#tl-launcher").click()
    assert frame.locator("#tl-error").inner_text() == "Czat nie jest tu dostępny."
    assert frame.locator("#tl-composer").is_hidden()

    verified = allowed.page("verified.html", server.url, public_id, lang="ru",
                            user={"id": "42", "name": "Ольга", "hash": user_hash(SECRET, "42")})
    page.goto(verified)
    frame = open_widget(page)
    assert frame.locator("#tl-send").inner_text() == "Отправить"
    frame.locator("#tl-input").fill("Привет")
    frame.locator("#tl-input").press("Enter")
    frame.locator(".tl-msg.tl-in[data-status=received]").wait_for(timeout=10000)
    sender = wait_until(lambda: read(lambda: (db.session.scalar(select(Message)) or Message()).meta),
                        timeout=5)
    assert sender["from"] == "site_user:42"
    assert read(lambda: db.session.scalar(select(func.count(InboundEvent.id)))) == 1


@pytest.mark.parametrize("backend", ["sqlite"])
def test_two_visitors_cannot_see_each_others_threads(
        backend, ctx, admin, start_server, sites, browser):
    site = sites()
    public_id = read(lambda: webchat_channel(site.origin).public_id)
    server = start_server()
    url = site.page("index.html", server.url, public_id, lang="en")
    agent = login_session(server.url, "admin@example.com", "correct horse battery")
    anna_page = browser.new_context().new_page()
    boris_page = browser.new_context().new_page()
    anna_page.goto(url)
    boris_page.goto(url)
    anna, boris = open_widget(anna_page), open_widget(boris_page)
    for frame, text in ((anna, "Anna: my address is Main St 1"), (boris, "Boris: hello")):
        frame.locator("#tl-input").fill(text)
        frame.locator("#tl-input").press("Enter")
        frame.locator(".tl-msg.tl-in[data-status=received]").wait_for(timeout=10000)
    conversation_id = read(lambda: db.session.scalar(
        select(Message.conversation_id).where(Message.text.like("Anna%"))))
    reply = agent.post(f"{server.url}/api/v1/conversations/{conversation_id}/messages",
                       json={"text": "Anna, your parcel left today"})
    assert reply.status_code == 201
    anna.get_by_text("Anna, your parcel left today").wait_for(timeout=10000)
    time.sleep(0.5)
    assert boris.locator(".tl-text").all_inner_texts() == ["Boris: hello"]
    assert anna.locator(".tl-text").all_inner_texts() == ["Anna: my address is Main St 1",
                                                          "Anna, your parcel left today"]
    boris_page.reload()
    boris = open_widget(boris_page)
    boris.locator(".tl-text").first.wait_for()
    assert boris.locator(".tl-text").all_inner_texts() == ["Boris: hello"]
    shot(anna_page, "widget-visitor-anna.png")
