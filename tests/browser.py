"""The wallboard in a real browser, for any test module: Debian's chromium driven by playwright.

    from tests.browser import browser_fixture, needs_browser, page_fixture  # noqa: F401  (`browser`, `page`)

A module's `pytestmark = needs_browser` (or a test's `@needs_browser`) skips without the browser, except
under CI=true, where a missing browser must fail (as tests/pg.py does).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from ivr.testing.board_fixtures import BROWSER, BROWSER_ARGS

needs_browser = pytest.mark.skipif(
    shutil.which(BROWSER) is None and os.environ.get("CI") != "true",
    reason=f"{BROWSER} missing (apt-get install chromium; .ci/run does)",
)


@pytest.fixture(name="browser")
async def browser_fixture() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=BROWSER, args=BROWSER_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture(name="page")
async def page_fixture(browser: Any) -> AsyncIterator[Any]:
    context = await browser.new_context(viewport={"width": 1600, "height": 1000})
    page = await context.new_page()
    page.problems = []  # console errors and uncaught exceptions
    page.on("console", lambda m: page.problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    page.on("dialog", lambda d: asyncio.ensure_future(d.accept()))  # "end this incident?"
    try:
        yield page
    finally:
        await context.close()


async def figure(page: Any, element: str) -> str:
    return (await page.text_content(f"#{element}")) or ""


async def until_text(page: Any, selector: str, wanted: Callable[[str], bool], timeout: float = 30.0) -> str:
    """Poll from here: the board's Content-Security-Policy rightly forbids the eval wait_for_function needs."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        text = ((await page.text_content(selector)) or "") if await page.locator(selector).count() else ""
        if wanted(text):
            return text
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{selector} still shows {text!r}")
        await asyncio.sleep(0.05)
