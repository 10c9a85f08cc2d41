"""axe-core (no critical or serious violation) and the screen checks on the pages outside the
inbox: the login page, every settings page, the account page, and the site-chat widget
(closed and open), each at desktop (1440 px) and phone (390 px) width."""
from __future__ import annotations

import pytest

from app.domain.channels import add_channel
from app.infra.state import db
from tests import inbox_helpers as h
from tests.browser.screen import DESKTOP, PHONE, check_axe, check_screen, frames
from tests.conftest import release_db

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ADMIN_PASSWORD = "correct horse battery"  # the `admin` fixture's
SETTINGS = ["/settings", "/settings/channels", "/settings/channels/new/telegram",
            "/settings/channels/new/email", "/settings/channels/new/webchat",
            "/settings/channels/{support}", "/settings/agents", "/settings/teams",
            "/settings/tokens", "/settings/webhooks", "/settings/crm", "/settings/audit",
            "/settings/rules", "/settings/sla", "/admin/canned-replies", "/account"]


@pytest.fixture
def site(ctx, admin, telegram_api, start_server):
    support, _sales = h.channels(telegram_api)
    chat = add_channel("webchat", "Sklep", {"allowed_origins": "", "secret": "axe-secret"})
    form = add_channel("webchat", "Sklep z formularzem", {"allowed_origins": "", "prechat": "true"})
    db.session.commit()
    h.reset_login_limit()
    release_db()
    return {"server": start_server(), "support": support, "chat": chat, "form": form}


def each_size(page, label, failures, target=None):
    """check_axe and check_screen at both widths; failures collected, not stopped at."""
    for name, size in (("1440 px", DESKTOP), ("390 px", PHONE)):
        page.set_viewport_size(size)
        frames(page)
        for check in (lambda: check_axe(target or page, f"{label} at {name}"),
                      lambda: check_screen(page, sizes=(size,))):
            try:
                check()
            except AssertionError as exc:
                failures.append(f"{label} at {name}: {exc}"[:600])
    page.set_viewport_size(DESKTOP)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_login_settings_and_widget_pass_axe_at_both_widths(backend, site, browser):
    server = site["server"]
    failures: list[str] = []
    context = browser.new_context(viewport=DESKTOP, locale="en-US")
    page = context.new_page()
    page.goto(f"{server.url}/login")
    each_size(page, "login", failures)
    page.fill("input[name=email]", "admin@example.com")
    page.fill("input[name=password]", "wrong password")
    page.click("button[type=submit]")
    page.wait_for_selector("input[name=password]")
    each_size(page, "login after a wrong password", failures)
    page.fill("input[name=email]", "admin@example.com")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("body[data-ready=yes]")
    for path in SETTINGS:
        url = path.format(support=site["support"].id)
        response = page.goto(f"{server.url}{url}")
        assert response.status == 200, url
        page.wait_for_load_state("networkidle")
        each_size(page, url, failures)

    page.goto(f"{server.url}/widget/demo?channel={site['chat'].id}")
    frame = page.locator("iframe[data-threadline]").element_handle().content_frame()
    frame.wait_for_selector("body[data-connected]")
    each_size(page, "widget demo page, chat closed", failures, target=frame)
    frame.click("#tl-launcher")
    frame.wait_for_selector("#tl-panel")
    each_size(page, "widget, chat open", failures, target=frame)
    # the pre-chat form (name, email or phone), in Polish
    page.goto(f"{server.url}/widget/demo?channel={site['form'].id}&lang=pl")
    frame = page.locator("iframe[data-threadline]").element_handle().content_frame()
    frame.wait_for_selector("body[data-connected]")
    frame.click("#tl-launcher")
    frame.wait_for_selector("#tl-prechat-start")
    each_size(page, "widget pre-chat form (pl)", failures, target=frame)
    context.close()
    assert not failures, "\n".join(failures)
