"""The connector's contract with the app: kind, setting keys, defaults, validation, secrets."""
from __future__ import annotations

import pytest

from connectors import get_connector
from connectors.whatsapp import Connector, download_media, mark_read, verify_subscription


def test_get_connector_finds_whatsapp():
    connector = get_connector("whatsapp")
    assert isinstance(connector, Connector) and connector.kind == "whatsapp"
    # Module functions are reachable from the instance the app holds.
    assert connector.verify_subscription is verify_subscription
    assert connector.mark_read is mark_read and connector.download_media is download_media


def test_keys_and_defaults(connector):
    assert connector.setting_keys == (
        "phone_number_id", "business_account_id", "access_token", "app_secret", "verify_token",
        "api_base_url", "api_version", "mark_read", "templates", "default_region")
    assert connector.secret_keys == {"access_token", "app_secret", "verify_token"}
    assert connector.required_keys == ("phone_number_id", "access_token", "app_secret",
                                       "verify_token")
    assert connector.default_settings() == {"api_base_url": "https://graph.facebook.com",
                                            "api_version": "v21.0"}


def test_validate_normalizes_cli_strings(connector, offline_settings):
    result = connector.validate_settings({**offline_settings, "mark_read": "false",
                                          "templates": '["order_update", "welcome"]',
                                          "default_region": "pl", "phone_number_id": " 1122 "})
    assert result["phone_number_id"] == "1122"
    assert result["mark_read"] is False
    assert result["templates"] == ["order_update", "welcome"]
    assert result["default_region"] == "PL"


def test_validate_comma_separated_templates(connector, offline_settings):
    result = connector.validate_settings({**offline_settings, "templates": "a, b"})
    assert result["templates"] == ["a", "b"]


@pytest.mark.parametrize("key, value, message", [
    ("phone_number_id", "+48 22 123", "phone_number_id"),
    ("default_region", "Poland", "default_region"),
    ("colour", "blue", "unknown setting"),
    ("access_token", "", "missing setting"),
])
def test_validate_rejects_bad_settings(connector, offline_settings, key, value, message):
    with pytest.raises(ValueError, match=message):
        connector.validate_settings({**offline_settings, key: value})


def test_redact_hides_secrets(connector, offline_settings):
    redacted = connector.redact(offline_settings)
    assert redacted["access_token"] == redacted["app_secret"] == redacted["verify_token"] == "***"
    assert redacted["phone_number_id"] == offline_settings["phone_number_id"]
