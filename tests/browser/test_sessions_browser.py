"""Session revocation in real browsers (issue 14, High 3): signing out in one browser ends
the agent's other browsers: their live socket is closed, their page falls back to the sign-in
form, and neither their session nor their remember cookie opens the inbox or a socket."""
from __future__ import annotations

import pytest
import requests
import socketio

from tests.inbox_helpers import PASSWORD, shot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _remembered(browser, server, email):
    context = browser.new_context(viewport={"width": 1440, "height": 860}, locale="en-US")
    page = context.new_page()
    page.goto(f"{server.url}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.check("input[name=remember]")
    page.click("button[type=submit]")
    page.wait_for_selector("body[data-live=yes]")
    return page


@pytest.mark.parametrize("backend", ["sqlite"])
def test_sign_out_in_one_browser_ends_the_others(backend, world, browser):
    server = world["server"]
    here = sign_in(browser, server, "anna@example.com")
    there = _remembered(browser, server, "anna@example.com")
    cookies = {c["name"]: c["value"] for c in there.context.cookies()}
    assert {"session", "remember_token"} <= set(cookies)

    here.click("form[action='/logout'] button")
    here.wait_for_url(f"{server.url}/login")
    # the other browser: its socket is closed by the server, a new one is refused, and the
    # page goes to the sign-in form
    there.wait_for_url(f"{server.url}/login", timeout=15_000)
    there.wait_for_selector("input[name=email]")
    shot(there, "signed-out-elsewhere")
    # nothing of the old cookies opens anything: the page, the API, a socket
    jar = "; ".join(f"{k}={v}" for k, v in cookies.items())
    page = requests.get(f"{server.url}/", headers={"Cookie": jar}, timeout=10, allow_redirects=False)
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    only_remember = requests.get(f"{server.url}/", headers={"Cookie": f"remember_token={cookies['remember_token']}"},
                                 timeout=10, allow_redirects=False)
    assert only_remember.status_code == 302
    assert requests.get(f"{server.url}/api/v1/conversations", headers={"Cookie": jar},
                        timeout=10).status_code == 401
    client = socketio.Client(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect(server.url, namespaces=["/agents"], headers={"Cookie": jar},
                       transports=["websocket"], wait_timeout=10)
    # signing in again works
    again = sign_in(browser, server, "anna@example.com")
    assert again.locator("body[data-live=yes]").count() == 1


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("width", [1440, 390])
def test_sign_out_everywhere_button_in_russian(backend, world, browser, width):
    server = world["server"]
    other = sign_in(browser, server, "boris@example.com")
    context = browser.new_context(viewport={"width": width, "height": 860}, locale="ru-RU")
    page = context.new_page()
    page.goto(f"{server.url}/login")
    page.fill("input[name=email]", "boris@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("body[data-live=yes]")
    page.goto(f"{server.url}/account")
    button = page.locator("button[data-action=sign-out-everywhere]")
    assert button.inner_text().strip() == "Выйти везде"
    text = page.inner_text("body")
    assert "Сеансы" in text and "Sign out everywhere" not in text and "Sessions" not in text
    assert "null" not in text and "undefined" not in text
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    button.scroll_into_view_if_needed()
    shot(page, f"account-sessions-ru-{width}")
    button.click()
    page.wait_for_url(f"{server.url}/login")
    assert "Вы вышли во всех браузерах." in page.inner_text("body")
    other.wait_for_url(f"{server.url}/login", timeout=15_000)
