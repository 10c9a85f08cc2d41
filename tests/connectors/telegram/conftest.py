"""Fixtures for the Telegram connector tests: payload loading and the fake Bot API."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from connectors.telegram import Connector
from tests.fakes.telegram_api import FakeTelegramAPI

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "telegram"
TOKEN = "7000000001:AAHt3stT0kenForThreadline_x-9"


def load(name: str) -> dict[str, Any]:
    """A fixture as an Update; bare Message samples are wrapped as Telegram would send them."""
    data = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    if "update_id" not in data and "message_id" in data and "chat" in data:
        data = {"update_id": 5550001, "message": data}
    return data


@pytest.fixture
def connector() -> Connector:
    return Connector()


@pytest.fixture
def parse(connector: Connector):
    def run(name: str, **settings: Any) -> Any:
        records = connector.parse(settings, load(name))
        assert len(records) == 1
        return records[0]
    return run


@pytest.fixture
def fake() -> Iterator[FakeTelegramAPI]:
    with FakeTelegramAPI(token=TOKEN) as api:
        yield api


@pytest.fixture
def settings(fake: FakeTelegramAPI) -> dict[str, Any]:
    return {"token": TOKEN, "mode": "polling", "secret_token": "s3cr3t-Token_value",
            "api_base_url": fake.base_url}
