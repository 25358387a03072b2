"""Current screenshots of the three pages for docs/pages.md, taken on a phone-sized screen:
`SAVE_SCREENSHOTS=1 make pytest ARGS=tests/browser/test_screenshots.py` writes docs/*.png.
Without SAVE_SCREENSHOTS the test still opens the pages (a smoke test) and writes nothing."""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import sign_in
from tests.harness import api as harness_api

DOCS = Path(__file__).resolve().parents[2] / "docs"
SAVE = os.environ.get("SAVE_SCREENSHOTS") == "1"

pytestmark = pytest.mark.usefixtures("worker")
TEMPORAL_UI = "http://127.0.0.1:8233"


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"temporal_ui_url": TEMPORAL_UI}


async def _shot(page: Page, name: str) -> None:
    if SAVE:
        await page.screenshot(path=str(DOCS / f"pages-{name}.png"), full_page=True)


async def test_screenshots_of_the_three_pages(
    page: Page, site: harness_api.Api, make_wallet: Callable[..., Awaitable[str]]
) -> None:
    user = await make_wallet(0)
    for n, amount in enumerate((2_400_000, 5_600_000, 900_000)):
        answer = await site.http.post(
            f"/wallets/{user}/earn",
            headers=site.service,
            json={
                "booking_id": f"bk-shot-{uuid.uuid4().hex[:8]}-{n}",
                "amount_paid": amount,
                "currency": "VND",
                "product_type": "hotel",
            },
        )
        assert answer.status_code == 201, answer.text
    await site.http.post(
        f"/wallets/{user}/transactions",
        headers=site.auth.admin(key=f"shot-{user}"),
        json={"points": 150, "reason": "goodwill: late check-in"},
    )
    balance = f"{(await site.wallet(user))['balance']:,}"
    await sign_in(page, user)
    await expect(page.get_by_test_id("balance")).to_have_text(balance)
    await _shot(page, "wallet")

    await page.goto("/checkout/bk-shot-checkout?amount=1200000")
    await page.get_by_label("Points to use", exact=True).fill("4000")
    await expect(page.get_by_test_id("final")).to_have_text("1,196,000 VND")
    await page.get_by_role("button", name="Apply points and continue").click()
    await expect(page.locator("#pay-what")).to_contain_text("To pay by card")  # the card step
    await page.locator("#card").get_by_placeholder("number").fill("4242424242424242")
    await _shot(page, "checkout")
    await page.get_by_role("button", name="Cancel and give my points back").click()
    await expect(page.get_by_test_id("outcome")).to_contain_text("Cancelled", timeout=20_000)

    await page.context.clear_cookies()
    await sign_in(page, "ops", "loyalty:admin", next=f"/admin/customers/{user}")
    await expect(page.get_by_test_id("balance")).to_have_text(balance)
    await _shot(page, "backoffice")
    link = page.get_by_role("link", name="workflow in the Temporal UI")
    href = await link.get_attribute("href")
    assert href is not None
    assert href.startswith(
        f"{TEMPORAL_UI}/namespaces/default/workflows/redemption-bk-shot-checkout/"
    )
    await page.goto("/admin")
    await expect(page.get_by_test_id("chart-issued")).to_be_visible()
