"""Settings contract of the email connector."""
from __future__ import annotations

import pytest

from connectors import get_connector
from connectors.email import Connector

REQUIRED = {"imap_host": "imap.example.test", "imap_user": "u", "imap_password": "p",
            "smtp_host": "smtp.example.test", "from_address": "Support@Shop.Example.test"}


def test_contract_keys():
    c = get_connector("email")
    assert isinstance(c, Connector) and c.kind == "email"
    assert c.setting_keys == (
        "imap_host", "imap_port", "imap_security", "imap_user", "imap_password", "imap_folders",
        "smtp_host", "smtp_port", "smtp_security", "smtp_user", "smtp_password", "from_address",
        "from_name", "reply_domain", "sent_folder", "subject_match_days", "max_attachment_bytes")
    assert c.secret_keys == {"imap_password", "smtp_password"}
    assert c.required_keys == ("imap_host", "imap_user", "imap_password", "smtp_host",
                               "from_address")


def test_defaults():
    s = Connector().validate_settings(REQUIRED)
    assert (s["imap_port"], s["imap_security"], s["smtp_port"], s["smtp_security"]) == \
        (993, "tls", 587, "starttls")
    assert s["imap_folders"] == "INBOX"
    assert s["reply_domain"] == "shop.example.test"
    assert s["subject_match_days"] == 14
    assert s["max_attachment_bytes"] == 25 * 1024 * 1024


def test_ports_coerced_and_reply_domain_kept():
    s = Connector().validate_settings({**REQUIRED, "imap_port": "143", "smtp_port": 25,
                                       "reply_domain": "Mail.Example.test"})
    assert s["imap_port"] == 143 and s["smtp_port"] == 25
    assert s["reply_domain"] == "mail.example.test"


@pytest.mark.parametrize("key, value, message", [
    ("imap_security", "ssl", "imap_security"),
    ("smtp_security", "tls1.3", "smtp_security"),
    ("imap_port", "nine", "imap_port"),
    ("smtp_port", 70000, "smtp_port"),
    ("from_address", "not-an-address", "from_address"),
    ("unknown_key", "x", "unknown"),
])
def test_invalid_values_name_the_key(key, value, message):
    with pytest.raises(ValueError, match=message):
        Connector().validate_settings({**REQUIRED, key: value})


def test_missing_required():
    with pytest.raises(ValueError, match="imap_password"):
        Connector().validate_settings({k: v for k, v in REQUIRED.items() if k != "imap_password"})


def test_redact_hides_secrets():
    red = Connector().redact({**REQUIRED, "smtp_password": "s3cret"})
    assert red["imap_password"] == "***" and red["smtp_password"] == "***"
    assert red["imap_user"] == "u"
