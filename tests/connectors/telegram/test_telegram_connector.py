"""Settings, webhook verification and event keys."""
from __future__ import annotations

import pytest

from connectors import get_connector
from connectors.base import MalformedPayload, VerificationError
from connectors.telegram import Connector

from tests.connectors.telegram.conftest import TOKEN


def test_registered_under_its_kind():
    connector = get_connector("telegram")
    assert isinstance(connector, Connector) and connector.kind == "telegram"
    assert connector.secret_keys == {"token", "secret_token"}
    assert connector.required_keys == ("token",)


def test_default_settings(connector):
    first, second = connector.default_settings(), connector.default_settings()
    assert first["mode"] == "polling"
    assert first["api_base_url"] == "https://api.telegram.org"
    assert len(first["secret_token"]) >= 32 and first["secret_token"] != second["secret_token"]
    assert connector.validate_settings({"token": TOKEN, **first})["mode"] == "polling"


@pytest.mark.parametrize("settings, key", [
    ({}, "token"),
    ({"token": TOKEN, "mode": "push"}, "mode"),
    ({"token": TOKEN, "mode": "webhook", "secret_token": "abc"}, "public_url"),
    ({"token": TOKEN, "public_url": "ftp://x"}, "public_url"),
    ({"token": "not a token"}, "token"),
    ({"token": TOKEN, "secret_token": "has spaces!"}, "secret_token"),
    ({"token": TOKEN, "colour": "red"}, "colour"),
    ({"token": TOKEN, "allow_groups": "maybe"}, "allow_groups"),
])
def test_validate_settings_names_the_bad_key(connector, settings, key):
    with pytest.raises(ValueError, match=key):
        connector.validate_settings(settings)


def test_validate_never_echoes_the_token(connector):
    with pytest.raises(ValueError) as info:
        connector.validate_settings({"token": "secret-but-malformed"})
    assert "secret-but-malformed" not in str(info.value)


def test_validate_normalizes(connector):
    clean = connector.validate_settings({
        "token": f" {TOKEN} ", "mode": "Webhook", "secret_token": "abc_DEF-1",
        "public_url": "https://inbox.example.pl/", "allow_groups": "true"})
    assert clean == {"token": TOKEN, "mode": "webhook", "secret_token": "abc_DEF-1",
                     "public_url": "https://inbox.example.pl", "allow_groups": True}


def test_redact_hides_secrets(connector):
    shown = connector.redact({"token": TOKEN, "secret_token": "abc", "mode": "polling"})
    assert shown == {"token": "***", "secret_token": "***", "mode": "polling"}


SETTINGS = {"token": TOKEN, "secret_token": "s3cr3t-Token_value"}


def test_verify_accepts_the_right_secret(connector):
    connector.verify_webhook(SETTINGS, {"X-Telegram-Bot-Api-Secret-Token": "s3cr3t-Token_value"},
                             b"{}")
    # header names are case-insensitive even in a plain dict
    connector.verify_webhook(SETTINGS, {"x-telegram-bot-api-secret-token": "s3cr3t-Token_value"},
                             b"{}")


@pytest.mark.parametrize("headers", [
    {},
    {"X-Telegram-Bot-Api-Secret-Token": "wrong"},
    {"X-Telegram-Bot-Api-Secret-Token": ""},
    {"X-Telegram-Bot-Api-Secret-Token": "s3cr3t-Token_valuE"},
])
def test_verify_rejects_missing_or_wrong_secret(connector, headers):
    with pytest.raises(VerificationError) as info:
        connector.verify_webhook(SETTINGS, headers, b"{}")
    assert info.value.status == 403


def test_verify_without_configured_secret_rejects(connector):
    with pytest.raises(VerificationError):
        connector.verify_webhook({"token": TOKEN}, {"X-Telegram-Bot-Api-Secret-Token": ""}, b"")


def test_event_key(connector):
    assert connector.event_key({"update_id": 306197398, "message": {}}, b"") == "306197398"
    assert connector.event_key(None, b'{"update_id": 7}') == "7"
    with pytest.raises(MalformedPayload, match="update_id"):
        connector.event_key({"message": {}}, b"")
    with pytest.raises(MalformedPayload):
        connector.event_key(None, b"not json")
