"""Security headers (issue 14, Low): HSTS behind https; the inbox's pages are never framed
and run only this site's scripts; the site chat's frame stays embeddable by its allowed
origins only."""
from __future__ import annotations

import pytest

from app.domain.channels import add_channel
from app.infra.state import db


@pytest.fixture
def https_app(app_config):
    from app import create_app

    config = {**app_config, "server": {**app_config["server"],
                                       "public_url": "https://inbox.example.com"}}
    flask_app = create_app(config)
    yield flask_app
    flask_app.extensions["threadline.db"].dispose()


def test_pages_are_not_framed_and_run_only_own_scripts(app):
    for path in ("/login", "/"):  # the sign-in page, and the redirect to it
        response = app.test_client().get(path)
        assert response.headers["X-Frame-Options"] == "DENY"
        csp = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp.split("script-src", 1)[1].split(";")[0]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "Strict-Transport-Security" not in response.headers  # plain http here


def test_hsts_behind_https(https_app):
    response = https_app.test_client().get("/login")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert int(response.headers["Strict-Transport-Security"].split("=")[1]) >= 15552000


def test_the_widget_frame_keeps_its_own_policy(app, ctx):
    channel = add_channel("webchat", "Site chat", {"allowed_origins": "https://shop.example.com"})
    db.session.commit()
    response = app.test_client().get(f"/widget/frame?c={channel.public_id}",
                                     headers={"Referer": "https://shop.example.com/"})
    assert response.status_code == 200
    assert "X-Frame-Options" not in response.headers
    assert response.headers["Content-Security-Policy"].endswith("frame-ancestors 'self' https://shop.example.com")
