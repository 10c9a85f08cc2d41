"""The admins' canned-replies page end to end in a real browser: from the inbox header an
admin adds, edits and deletes a reply; an agent's open inbox picks up the edit without a
reload and fills its variables; an agent gets 403 and no link."""
from __future__ import annotations

import time

import pytest

from tests.inbox_helpers import telegram_post
from tests.inbox_helpers import shot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ADMIN_PASSWORD = "correct horse battery"  # the `admin` fixture's


@pytest.mark.parametrize("backend", ["sqlite"])
def test_admin_manages_canned_replies(backend, world, browser):  # noqa: F811
    server = world["server"]
    anna = sign_in(browser, server, "anna@example.com")
    anna_loaded = time.monotonic()
    assert anna.locator(".top .admin-link").count() == 0  # agents get no link
    telegram_post(server, world["support"], "support-secret", 7901, 4901, "Здравствуйте", "Ольга Петрова")
    anna.click(".row:has-text('Ольга Петрова')")
    anna.wait_for_selector("#composer-text")

    admin = sign_in(browser, server, "admin@example.com", ADMIN_PASSWORD)
    admin.click(".top .admin-link")
    admin.wait_for_url(f"{server.url}/admin/canned-replies")
    admin.wait_for_selector(".admin .empty")

    # add
    admin.fill("#canned-new input[name=shortcut]", "welcome")
    admin.fill("#canned-new input[name=title]", "Welcome")
    admin.fill("#canned-new textarea[name=text]", "Добро пожаловать, {{customer.first_name}}!")
    admin.click("#canned-new button[type=submit]")
    admin.wait_for_selector(".flash.ok:has-text('Canned reply /welcome added.')")
    row = "details.canned[data-shortcut=welcome]"
    assert admin.inner_text(f"{row} summary .title") == "Welcome"
    assert admin.locator(".admin .empty").count() == 0
    # a bad shortcut is refused with the reason, what was typed stays
    admin.fill("#canned-new input[name=shortcut]", "two words")
    admin.fill("#canned-new textarea[name=text]", "x")
    admin.click("#canned-new button[type=submit]")
    admin.wait_for_selector(".flash.error:has-text('letters, digits')")
    assert admin.input_value("#canned-new input[name=shortcut]") == "two words"
    assert admin.locator("details.canned").count() == 1
    shot(admin, "canned-admin-added")

    # edit
    admin.click(f"{row} summary")
    admin.fill(f"{row} textarea[name=text]", "Рады вам, {{customer.first_name}}! Ваш менеджер — {{agent.name}}.")
    admin.click(f"{row} [data-action=save]")
    admin.wait_for_selector(".flash.ok:has-text('Canned reply /welcome saved.')")
    assert "Рады вам" in admin.inner_text(f"{row} summary .preview")
    shot(admin, "canned-admin-edited")

    # Anna's open inbox finds the edited reply without a reload, variables filled
    time.sleep(max(0.0, 5.2 - (time.monotonic() - anna_loaded)))  # the list's refresh interval
    anna.type("#composer-text", "/wel")
    anna.wait_for_selector("#composer .suggestions:not([hidden]) [data-shortcut=welcome]", timeout=10_000)
    anna.press("#composer-text", "Tab")
    assert anna.input_value("#composer-text") == "Рады вам, Ольга! Ваш менеджер — Anna Agent."
    shot(anna, "canned-agent-inserted")

    # delete: a dismissed confirmation keeps it, an accepted one deletes it
    admin.click(f"{row} summary")
    admin.once("dialog", lambda dialog: dialog.dismiss())
    admin.click(f"{row} [data-action=delete]")
    admin.wait_for_timeout(300)
    assert admin.locator(row).count() == 1
    messages = []
    admin.once("dialog", lambda dialog: (messages.append(dialog.message), dialog.accept()))
    admin.click(f"{row} [data-action=delete]")
    admin.wait_for_selector(".flash.ok:has-text('Canned reply /welcome deleted.')")
    assert messages == ["Delete the canned reply /welcome?"]
    assert admin.locator("details.canned").count() == 0
    admin.wait_for_selector(".admin .empty")
    shot(admin, "canned-admin-deleted")

    # an agent may neither post to the page (CSRF token and all) nor open it
    status = anna.evaluate("""() => fetch('/admin/canned-replies', {method: 'POST',
        headers: {'Content-Type': 'application/x-www-form-urlencoded',
                  'X-CSRFToken': document.querySelector('meta[name=csrf-token]').content},
        body: 'shortcut=sneaky&text=y'}).then(r => r.status)""")
    assert status == 403
    response = anna.goto(f"{server.url}/admin/canned-replies")
    assert response.status == 403
    shot(anna, "canned-agent-forbidden")
    admin.reload()
    admin.wait_for_selector(".admin .empty")  # nothing was stored
