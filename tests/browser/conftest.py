"""Browser tests: Playwright (its async API, on the suite's session event loop, which also
serves the API under test) driving Debian's `chromium` through `executable_path`. Playwright's
own browser download needs the internet; `make test` installs Debian's chromium when it can
(scripts/chromium.py) and otherwise these tests skip with the command that installs it (under
CI=true they fail instead: CI must run them).

One browser per session; each test gets a fresh context (its own cookies) on a phone-sized
screen, and on failure a screenshot of its page in test-output/screenshots/."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.harness import api as harness_api

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
INSTALL = "apt-get install -y chromium"
# Without the background-networking flags Chromium dials Google's services at start, and on a
# closed network those connections are refused and slow the start.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
PHONE = {"width": 390, "height": 844}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # CI must run them: there a missing chromium fails the tests (the browser fixture) instead.
    if CHROMIUM is None and os.environ.get("CI") != "true":
        skip = pytest.mark.skip(reason=f"no chromium: install it with `{INSTALL}`")
        for item in items:
            if "tests/browser" in str(item.path):
                item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM is not None, f"no chromium: install it with `{INSTALL}`"
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        await chromium.close()


@pytest.fixture
async def site(live_api: harness_api.Api) -> harness_api.Api:
    """The API (and its pages) on a port of its own, webhooks from localstripe pointed at it."""
    return live_api


@pytest.fixture
async def context(browser: Browser, site: harness_api.Api) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(base_url=site.url, viewport=PHONE)
    ctx.set_default_timeout(10_000)
    yield ctx
    await ctx.close()


@pytest.fixture
async def page(context: BrowserContext, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    tab = await context.new_page()
    yield tab
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid.split("::")[-1])
        path = SCREENSHOTS / f"{name}.png"
        await tab.screenshot(path=str(path), full_page=True)
        print(f"screenshot of the failed page: {path}")


async def sign_in(page: Page, user_id: str, scope: str = "wallet:self", next: str = "") -> None:
    await page.goto(f"/signin?next={next}" if next else "/signin")
    await page.get_by_label("User id").fill(user_id)
    await page.get_by_label("Sign in as").select_option(scope)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_load_state()
