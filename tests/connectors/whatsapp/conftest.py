"""Shared helpers for the WhatsApp connector tests: fixture loading, settings, the fake API."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

# `tests.fakes` must import however pytest is started (plain `pytest` or `python -m pytest`).
ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from connectors.whatsapp import Connector  # noqa: E402
from tests.fakes.graph_api import (  # noqa: E402
    DEFAULT_PHONE_NUMBER_ID, DEFAULT_TOKEN, FakeGraphAPI,
)

FIXTURES = ROOT / "tests" / "fixtures" / "whatsapp"
APP_SECRET = "test-app-secret"
VERIFY_TOKEN = "test-verify-token"


@pytest.fixture
def connector() -> Connector:
    return Connector()


@pytest.fixture
def load() -> Callable[[str], tuple[bytes, Any]]:
    """(exact file bytes, parsed JSON) for a fixture name; the bytes are what gets signed."""
    def _load(name: str) -> tuple[bytes, Any]:
        raw = (FIXTURES / name).read_bytes()
        return raw, json.loads(raw)
    return _load


@pytest.fixture
def fake() -> Iterator[FakeGraphAPI]:
    with FakeGraphAPI() as api:
        yield api


@pytest.fixture
def settings(fake: FakeGraphAPI) -> dict[str, Any]:
    return {"phone_number_id": DEFAULT_PHONE_NUMBER_ID, "access_token": DEFAULT_TOKEN,
            "app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN,
            "api_base_url": fake.base_url, "api_version": "v21.0"}


@pytest.fixture
def offline_settings() -> dict[str, Any]:
    """Settings for tests that never reach the network."""
    return {"phone_number_id": DEFAULT_PHONE_NUMBER_ID, "access_token": DEFAULT_TOKEN,
            "app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN, "default_region": "PL"}
