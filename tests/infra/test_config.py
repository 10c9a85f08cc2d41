"""Configuration: file, environment overrides, errors, secrets kept out of logs."""
from __future__ import annotations

import logging

import pytest

from app.infra.config import ConfigError, load_config, redacted


def test_environment_overrides_file(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('secret_key = "from-file"\n[server]\nport = 9000\n[jobs]\nmax_attempts = 4\n')
    config = load_config(path, environ={"THREADLINE_SERVER_PORT": "9100",
                                        "THREADLINE_JOBS_BACKOFF_BASE": "0.5",
                                        "THREADLINE_SERVER_POLLERS": "off"})
    assert config["secret_key"] == "from-file"
    assert config["server"]["port"] == 9100 and config["jobs"]["max_attempts"] == 4
    assert config["jobs"]["backoff_base"] == 0.5 and config["server"]["pollers"] is False
    assert config["database_url"] == f"sqlite:///{tmp_path / 'var' / 'threadline.db'}"


def test_unknown_key_is_an_error(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[server]\nprot = 1\n")
    with pytest.raises(ConfigError, match="server.'prot'|prot"):
        load_config(path, environ={})


def test_bad_boolean_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="true/false"):
        load_config(tmp_path / "none.toml", environ={"THREADLINE_SERVER_POLLERS": "maybe"})


def test_redacted_hides_secrets(tmp_path):
    config = load_config(tmp_path / "none.toml", environ={
        "THREADLINE_SECRET_KEY": "super-secret-value",
        "THREADLINE_DATABASE_URL": "postgresql://app:pa55word@db/threadline"})
    shown = str(redacted(config))
    assert "super-secret-value" not in shown and "pa55word" not in shown
    assert "postgresql://app:***@db/threadline" in shown


def test_secrets_are_scrubbed_from_logs(tmp_path, caplog):
    from app import create_app
    from app.infra.logs import register_channel_secrets
    from connectors import get_connector

    config = load_config(tmp_path / "none.toml", environ={
        "THREADLINE_SECRET_KEY": "very-secret-key-123",
        "THREADLINE_DATABASE_URL": f"sqlite:///{tmp_path}/x.db"})
    app = create_app(config)
    register_channel_secrets(get_connector("whatsapp"), {"access_token": "EAAG-access-token-xyz"})
    log = logging.getLogger("threadline.test")
    with caplog.at_level(logging.INFO):
        log.info("key is %s", "very-secret-key-123")
        log.info("POST https://api.telegram.org/bot123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/sendMessage")
        log.warning("graph said no for token EAAG-access-token-xyz")
    text = caplog.text
    assert "very-secret-key-123" not in text and "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" not in text
    assert "EAAG-access-token-xyz" not in text
    assert text.count("***") == 3
    app.extensions["threadline.db"].dispose()
