"""Helpers shared by the inbox tests: two telegram channels with different team access,
agents in one team, messages in through the real ingest door."""
from __future__ import annotations

import itertools

import requests

from app.domain.agents import create_token
from app.domain.channels import add_channel
from app.usecases.ingest import receive
from app.infra.models import Conversation, Message
from app.infra.state import db
from app.domain.agents import create_agent
from tests.conftest import telegram_update

_ids = itertools.count(1000)
PASSWORD = "agent-password-1"


def channels(telegram_api):
    support = add_channel("telegram", "Support bot", {
        "token": "111111:support-token", "mode": "webhook", "public_url": "https://inbox.example.com", "secret_token": "support-secret",
        "api_base_url": telegram_api.base_url}, teams=["Support"])
    sales = add_channel("telegram", "Sales bot", {
        "token": "222222:sales-token", "mode": "webhook", "public_url": "https://inbox.example.com", "secret_token": "sales-secret",
        "api_base_url": telegram_api.base_url}, teams=["Sales"])
    db.session.commit()
    return support, sales


def agent(email: str, name: str, teams: list[str], role: str = "agent"):
    found = create_agent(email, name, PASSWORD, role=role, teams=teams)
    db.session.commit()
    return found


def token(agent_) -> str:
    value = create_token(agent_, "tests")
    db.session.commit()
    return value


def inbound(channel, user_id: int, text: str, first_name: str = "Анна") -> Message:
    n = next(_ids)
    receive(channel, str(n), telegram_update(n, user_id, text, first_name=first_name),
            process="inline")
    db.session.expire_all()
    from sqlalchemy import select

    message = db.session.scalar(select(Message).where(Message.text == text)
                                .order_by(Message.id.desc()).limit(1))
    db.session.commit()  # SQLite: an open transaction holds the write lock a server needs
    return message


def conversation_of(message: Message) -> Conversation:
    conversation = db.session.get(Conversation, message.conversation_id)
    db.session.commit()
    return conversation


def reset_login_limit() -> None:
    """The login rate limit counts per address; tests all come from 127.0.0.1."""
    from app.infra.extensions import limiter

    limiter.reset()


def shot(page, name: str) -> None:
    """A screenshot under the test run's output folder (THREADLINE_TEST_OUTPUT)."""
    from tests.conftest import OUTPUT

    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / f"{name}.png"), full_page=False)


def sign_in(browser, server, email: str, password: str = PASSWORD, width: int = 1440):
    """A new browser context signed in through the login form, the inbox loaded and live."""
    context = browser.new_context(viewport={"width": width, "height": 860}, locale="en-US")
    page = context.new_page()
    page.goto(f"{server.url}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_selector("body[data-ready=yes]")
    page.wait_for_selector("body[data-live=yes]")
    return page


def telegram_post(server, channel, secret, update_id, user_id, text, name="Ольга"):
    """A Telegram update POSTed to a running server's webhook, as Telegram would."""
    update = {"update_id": update_id, "message": {
        "message_id": update_id, "from": {"id": user_id, "is_bot": False, "first_name": name},
        "chat": {"id": user_id, "type": "private"}, "date": 1_800_000_000 + update_id, "text": text}}
    response = requests.post(f"{server.url}/webhooks/telegram/{channel.id}", json=update,
                             headers={"X-Telegram-Bot-Api-Secret-Token": secret}, timeout=30)
    assert response.status_code == 200, response.text
