"""Headless Debian Chromium driven by Playwright for the report.html tests.

Playwright's own browser download is not reachable on these machines (and ``playwright install``
is never needed): :func:`launch` starts ``/usr/bin/chromium`` through ``executable_path``. The
``chromium`` (one browser per test session), ``page`` and ``console_errors`` fixtures live in
tests/conftest.py.

``console_errors`` collects what a reader of the page would see go wrong: uncaught exceptions,
``console.error``/``console.assert`` messages and failed loads (a missing side file).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
#: No sandbox: CI runs as root in a container, where Chromium's sandbox cannot start.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--mute-audio"]
VIEWPORT = {"width": 1280, "height": 900}


def chromium_missing_reason() -> str | None:
    """Why the browser tests cannot run here (None when they can)."""
    if not CHROMIUM.exists():
        return "the browser tests need /usr/bin/chromium (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the browser tests need playwright (pip install -e '.[test]')"
    return None


@contextmanager
def launch() -> Iterator[Browser]:
    """The Debian Chromium, headless, under Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def new_page(browser: Browser, errors: list[str]) -> Iterator[Page]:
    """A page in a fresh browser context (no shared storage); problems are appended to ``errors``."""
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    page = context.new_page()

    def console(msg: Any) -> None:
        if msg.type in ("error", "assert"):
            errors.append(f"console: {msg.text}")

    page.on("pageerror", lambda exc: errors.append(f"exception: {exc}"))
    page.on("console", console)
    page.on("requestfailed", lambda req: errors.append(f"load failed: {req.url} {req.failure}"))
    try:
        yield page
    finally:
        context.close()
