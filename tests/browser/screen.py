"""Checks every screen test makes (issue 19): no stray `null` / `undefined` / `NaN` in the page's
text, nothing wider than the window (no sideways scrolling), at desktop and phone width; and
axe-core (axe-playwright-python, test-only) with no critical or serious violation."""
from __future__ import annotations

import re

DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
STRAY = re.compile(r"\b(null|undefined|NaN|\[object Object\])\b")


def check_text(page, where: str = "body") -> None:
    text = page.inner_text(where)
    found = STRAY.findall(text)
    assert not found, f"stray {found} on the page: {text[:2000]}"


def check_no_overflow(page) -> None:
    wide = page.evaluate("""() => {
        const w = window.innerWidth;
        const out = [...document.querySelectorAll('body *')].filter((n) => {
          const r = n.getBoundingClientRect();
          const s = getComputedStyle(n);
          return s.position !== 'fixed' && r.width > 0 && r.right > w + 1 && n.closest('[hidden]') === null
            && !n.closest('.list, .messages, .card, .board, .columns, .snippet, .top-links');
        }).slice(0, 5).map((n) => `${n.tagName}.${n.className} right=${Math.round(n.getBoundingClientRect().right)}`);
        return {scroll: document.documentElement.scrollWidth - w, out};
    }""")
    assert wide["scroll"] <= 0, f"the page scrolls sideways by {wide['scroll']} px: {wide['out']}"


def frames(page) -> None:
    """Two animation frames: the layout after a resize or a class change is done."""
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")


def check_screen(page, sizes=(DESKTOP, PHONE)) -> None:
    """Stray words and overflow at each size; the viewport is put back afterwards."""
    before = page.viewport_size
    for size in sizes:
        page.set_viewport_size(size)
        frames(page)
        check_text(page)
        check_no_overflow(page)
    page.set_viewport_size(before)


def check_axe(page, label: str) -> None:
    """axe-core on the page as it stands: no critical or serious violation."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    bad = [v for v in results.response["violations"] if v.get("impact") in ("critical", "serious")]
    assert not bad, f"{label}: " + "; ".join(
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes'][:4]]}" for v in bad)


def wait_js(page, expression: str, arg=None, timeout: float = 10_000, interval: float = 50):
    """Wait until a JavaScript expression (or `() => …` function) is truthy in the page.

    Playwright's wait_for_function compiles its predicate inside the page with `new
    Function`, which the inbox pages' CSP (script-src 'self', no 'unsafe-eval') refuses;
    page.evaluate goes through the DevTools protocol, which the CSP does not govern."""
    import time

    deadline = time.monotonic() + timeout / 1000
    while True:
        value = page.evaluate(expression, arg)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} ms waiting for: {expression}")
        page.wait_for_timeout(interval)
