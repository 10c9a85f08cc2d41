"""Work distribution end to end in a real browser: an admin sets a team's distribution and
creates a rule on /settings/rules; the next Telegram message is assigned by it, and the
admin's open inbox shows the assignment and the reason live, with the agent's availability in
the header; the settings pages hold at 1440 and 390 px."""
from __future__ import annotations

import re

import pytest

from tests.inbox_helpers import shot, sign_in, telegram_post

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ADMIN_PASSWORD = "correct horse battery"  # the `admin` fixture's


def _clean(page) -> None:
    """No stray null/undefined on screen, nothing wider than the window."""
    text = page.inner_text("body")
    assert not re.search(r"\b(null|undefined|NaN)\b", text), text
    width = page.evaluate("""() => [document.documentElement.scrollWidth, window.innerWidth,
        [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
          .slice(0, 5).map(e => e.tagName + '.' + e.className + ':' + Math.round(e.getBoundingClientRect().right))]""")
    assert width[0] <= width[1], width


@pytest.mark.parametrize("backend", ["sqlite"])
def test_admin_creates_a_rule_and_the_next_message_is_assigned_live(backend, world, browser):
    server = world["server"]
    sam = sign_in(browser, server, "sam@example.com")
    # Sam's page is open: automatic availability makes him online
    sam.wait_for_selector("#availability[data-status=online]")
    assert sam.input_value("#availability") == "auto"

    admin = sign_in(browser, server, "admin@example.com", ADMIN_PASSWORD)
    admin.select_option("#availability", "away")       # the admin takes no conversations
    admin.wait_for_selector("#availability[data-status=away]")
    settings = admin.context.new_page()
    settings.goto(f"{server.url}/settings/rules")
    # Sales: round-robin, capacity 3
    sales_form = settings.locator("form.team:has(h3:text-is('Sales'))")
    sales_form.locator("select[name=distribution]").select_option("round_robin")
    sales_form.locator("input[name=capacity]").fill("3")
    sales_form.locator("button[type=submit]").click()
    settings.wait_for_selector(".flash.ok:has-text('Team Sales saved.')")
    # the rule: Polish customers go to Sales' distribution
    form = settings.locator("#rule-new")
    form.locator("input[name=name]").fill("Polish customers → Sales")
    form.locator("select[name=event]").select_option("conversation_created")
    form.locator("input[name=language][value=pl]").check()
    form.locator("select[name=assign_team]").select_option(label="Sales")
    form.locator("input[name=distribute]").check()
    form.locator("button[type=submit]").click()
    settings.wait_for_selector(".flash.ok:has-text('Polish customers → Sales')")
    rule = settings.locator(".rule:has-text('Polish customers → Sales')")
    assert "language: Polish" in rule.inner_text()
    assert rule.locator("button.switch").get_attribute("aria-checked") == "true"
    _clean(settings)
    shot(settings, "routing-settings-rules-1440")
    settings.set_viewport_size({"width": 390, "height": 860})
    _clean(settings)
    shot(settings, "routing-settings-rules-390")
    settings.goto(f"{server.url}/settings/sla")
    _clean(settings)
    settings.set_viewport_size({"width": 1440, "height": 860})
    _clean(settings)

    # a Polish customer writes to the Sales bot (a channel Sam's team may see)
    telegram_post(server, world["sales"], "sales-secret", 8801, 5801,
                  "Dzień dobry, gdzie jest moje zamówienie?", "Zofia Nowak")
    row = admin.locator(".row:has-text('Zofia Nowak')")
    row.locator(".assignee:text-is('Sam Sales')").wait_for(timeout=20_000)
    row.click()
    line = admin.locator(".activity[data-kind=assigned]")
    line.wait_for(timeout=10_000)
    assert ("assigned to Sam Sales by team Sales's round-robin distribution "
            "(rule 'Polish customers → Sales')") in line.inner_text()
    assert "moved to team Sales by rule 'Polish customers → Sales'" in admin.inner_text(".messages")
    # Sam sees it in his list, his own
    sam.locator(".row:has-text('Zofia Nowak') .assignee:text-is('Sam Sales')").wait_for(timeout=20_000)
    _clean(admin)
    shot(admin, "routing-inbox-assigned-by-rule")

    # while the admin looks at the thread, a rule acts on the next message: the line is live
    settings.goto(f"{server.url}/settings/rules")
    form = settings.locator("#rule-new")
    form.locator("input[name=name]").fill("Complaints")
    form.locator("select[name=event]").select_option("customer_message")
    form.locator("input[name=words]").fill("reklamacja, жалоба")
    form.locator("select[name=set_priority]").select_option("urgent")
    form.locator("button[type=submit]").click()
    settings.wait_for_selector(".flash.ok:has-text('Complaints')")
    telegram_post(server, world["sales"], "sales-secret", 8802, 5801,
                  "To jest REKLAMACJA!", "Zofia Nowak")
    admin.locator(".activity:has-text(\"priority set to urgent by rule 'Complaints'\")").wait_for(
        timeout=20_000)
    row.locator(".prio.urgent").wait_for(timeout=10_000)
    _clean(admin)
