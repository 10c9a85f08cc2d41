"""Sign-in limits (issue 14, Medium 9): failed sign-ins are limited per account whatever the
address (429 with Retry-After), and per address, where the address is the client's behind a
configured number of trusted proxies and X-Forwarded-For is ignored otherwise."""
from __future__ import annotations

import re

import pytest

from app.infra.state import db
from tests import inbox_helpers as h


@pytest.fixture
def make_app(app_config):
    made = []

    def make(**security):
        from app import create_app
        from app.domain.agents import create_agent

        config = {**app_config, "security": {**app_config["security"], **security}}
        flask_app = create_app(config)
        made.append(flask_app)
        with flask_app.app_context():
            for email in ("anna@example.com", "boris@example.com"):
                create_agent(email, email.split("@")[0].title(), h.PASSWORD)
            db.session.commit()
        h.reset_login_limit()
        return flask_app

    yield make
    for flask_app in made:
        flask_app.extensions["threadline.db"].dispose()


def _attempt(flask_app, email, password, peer="10.0.0.5", forwarded=None):
    client = flask_app.test_client()
    environ = {"REMOTE_ADDR": peer}
    page = client.get("/login", environ_base=environ).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token},
                       environ_base=environ, headers=headers)


def test_an_account_is_limited_whatever_the_address(make_app):
    flask_app = make_app(login_account_limit="5 per 15 minutes")
    for n in range(5):
        wrong = _attempt(flask_app, "anna@example.com", "wrong password", peer=f"10.0.1.{n}")
        assert wrong.status_code == 401
    # the right password from yet another address: the account waits
    limited = _attempt(flask_app, "Anna@Example.com ", h.PASSWORD, peer="10.0.2.1")
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
    # everyone else behind the same addresses signs in
    assert _attempt(flask_app, "boris@example.com", h.PASSWORD, peer="10.0.1.0").status_code == 302


def test_successful_sign_ins_do_not_count(make_app):
    flask_app = make_app()
    for _ in range(12):  # one office behind one address signing in all morning
        assert _attempt(flask_app, "boris@example.com", h.PASSWORD).status_code == 302


def test_forwarded_for_is_ignored_without_trusted_proxies(make_app):
    flask_app = make_app(trusted_proxy_hops=0)
    for n in range(10):  # an attacker rotating a forged header, one guess per made-up account
        response = _attempt(flask_app, f"nobody{n}@example.com", "x", forwarded=f"198.51.100.{n}")
        assert response.status_code == 401
    assert _attempt(flask_app, "anna@example.com", h.PASSWORD,
                    forwarded="198.51.100.99").status_code == 429


def test_behind_a_trusted_proxy_the_client_address_counts(make_app):
    flask_app = make_app(trusted_proxy_hops=1)
    proxy = "10.0.0.1"
    for n in range(10):
        response = _attempt(flask_app, f"nobody{n}@example.com", "x", peer=proxy,
                            forwarded="203.0.113.7")
        assert response.status_code == 401
    assert _attempt(flask_app, "anna@example.com", h.PASSWORD, peer=proxy,
                    forwarded="203.0.113.7").status_code == 429
    # the other agents behind the same proxy are not locked out
    assert _attempt(flask_app, "boris@example.com", h.PASSWORD, peer=proxy,
                    forwarded="203.0.113.8").status_code == 302
