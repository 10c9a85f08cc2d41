"""Sign-in hardening (issue 14): `next` stays on this site (Medium 4)."""
from __future__ import annotations

import re

import pytest

from tests import inbox_helpers as h

PASSWORD = "correct horse battery"


def _csrf(client) -> str:
    page = client.get("/login").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _login(client, email="admin@example.com", password=PASSWORD, next_=None, **kw):
    url = "/login" if next_ is None else "/login?next=" + next_
    return client.post(url, data={"email": email, "password": password,
                                  "csrf_token": _csrf(client), **kw})


@pytest.mark.parametrize("vector", [
    "//evil.example", "/%09/evil.example", "/%0a/evil.example", "/%0d/evil.example",
    "/\\evil.example", "%2F%2Fevil.example", "/%5Cevil.example", "\\\\evil.example",
    "https://evil.example", "https:evil.example", "javascript:alert(1)",
    "%20//evil.example", "/%7F/evil.example", "http%3A%2F%2Fevil.example",
])
def test_login_next_never_leaves_the_site(app, admin, vector):
    h.reset_login_limit()
    response = _login(app.test_client(), next_=vector)
    assert response.status_code == 302
    assert response.headers["Location"] == "/", (vector, response.headers["Location"])


def test_login_next_keeps_a_local_path(app, admin):
    h.reset_login_limit()
    response = _login(app.test_client(), next_="/conversations/5%3Fx%3D1")
    assert response.status_code == 302 and response.headers["Location"] == "/conversations/5?x=1"
