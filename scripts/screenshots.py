"""Retake the README's screenshots from `threadline demo` data: docs/inbox.png (1440×900),
docs/inbox-phone.png (390×844) and docs/reports.png (the Reports page, last 90 days, whole page
at 1440 wide). Needs the test extras (Playwright) and Debian's chromium.

    .venv/bin/python scripts/screenshots.py

A throwaway config, SQLite database and server in a temporary folder; nothing else is touched.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THREADLINE = [sys.executable, "-m", "app.cli"]
ADMIN, PASSWORD = "admin@demo.threadline.local", "screenshot-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("threadline serve stopped")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("threadline serve did not start")


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "THREADLINE_CONFIG": str(Path(folder) / "config.toml"),
               "PYTHONPATH": str(ROOT)}
        run = lambda *args: subprocess.run([*THREADLINE, *args], cwd=folder, env=env, check=True,  # noqa: E731
                                           capture_output=True, text=True)
        run("init", "--admin-email", ADMIN, "--admin-password", PASSWORD)
        run("demo")
        port = free_port()
        server = subprocess.Popen([*THREADLINE, "serve", "--host", "127.0.0.1", "--port", str(port)],
                                  cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(port, server)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                            args=["--no-sandbox", "--disable-gpu"])
                for name, size in (("inbox.png", {"width": 1440, "height": 900}),
                                   ("inbox-phone.png", {"width": 390, "height": 844})):
                    page = browser.new_context(viewport=size, locale="en-US").new_page()
                    page.goto(f"http://127.0.0.1:{port}/login")
                    page.fill("input[name=email]", ADMIN)
                    page.fill("input[name=password]", PASSWORD)
                    page.click("button[type=submit]")
                    page.wait_for_selector("body[data-ready=yes][data-live=yes]")
                    page.click(".row >> nth=0")
                    page.wait_for_selector("aside.card", state="attached")
                    page.wait_for_selector(".row.active .unread-mark", state="detached")  # read
                    page.evaluate("document.activeElement && document.activeElement.blur()")
                    page.screenshot(path=str(ROOT / "docs" / name))
                    print(f"docs/{name}")
                    page.context.close()
                run("reports", "rollup")
                page = browser.new_context(viewport={"width": 1440, "height": 900},
                                           locale="en-US").new_page()
                page.goto(f"http://127.0.0.1:{port}/login")
                page.fill("input[name=email]", ADMIN)
                page.fill("input[name=password]", PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_selector("body[data-ready=yes]")
                page.goto(f"http://127.0.0.1:{port}/reports")
                page.wait_for_selector("body[data-reports=ready]")
                page.select_option("select[name=period]", "90")
                page.wait_for_selector("body[data-reports=ready]")
                page.wait_for_selector("#table-sla table")
                page.screenshot(path=str(ROOT / "docs" / "reports.png"), full_page=True)
                print("docs/reports.png")
                page.context.close()
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=20)


if __name__ == "__main__":
    main()
