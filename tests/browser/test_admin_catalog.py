"""The backoffice's voucher catalog and dashboard in a browser: a product with uploaded codes,
a purchase whose code shows on the customer's Wallet tab, and the dashboard's daily sums."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import sign_in
from tests.harness import api as harness_api

ADMIN_SCOPE = "loyalty:admin"


@pytest.mark.usefixtures("worker")
async def test_admin_uploads_codes_and_the_customer_sees_theirs(
    page: Page, site: harness_api.Api, make_wallet: Callable[..., Awaitable[str]]
) -> None:
    name = f"Lounge pass {uuid.uuid4().hex[:6]}"
    codes = [f"LOUNGE-{uuid.uuid4().hex[:10].upper()}" for _ in range(2)]
    await sign_in(page, "ops-5", ADMIN_SCOPE, next="/admin/vouchers")
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Price (points)").fill("many")  # refused next to its field
    await page.get_by_role("button", name="Create product").click()
    await expect(page.locator("#p-price_points-error")).to_be_visible()
    await page.get_by_label("Price (points)").fill("300")
    await page.get_by_label("Codes", exact=True).select_option("uploaded")
    await page.get_by_role("button", name="Create product").click()
    row = page.get_by_test_id("products").get_by_role("row").filter(has_text=name)
    await expect(row).to_contain_text("uploaded")
    await row.get_by_label("Codes, one per line").fill("\n".join(codes))
    await row.get_by_role("button", name="Upload").click()
    row = page.get_by_test_id("products").get_by_role("row").filter(has_text=name)
    await expect(row.locator("td").nth(3)).to_have_text("2")

    products = (await site.http.get("/vouchers/products", headers=site.admin)).json()
    product = next(p for p in products if p["name"] == name)
    user = await make_wallet(1_000)
    bought = await site.http.post(
        f"/wallets/{user}/vouchers",
        json={"product_id": product["product_id"]},
        headers=site.auth.customer(user, key=f"buy-{uuid.uuid4().hex}"),
    )
    assert bought.status_code == 201, bought.text
    code = bought.json()["code"]
    assert code in codes

    await page.context.clear_cookies()
    await sign_in(page, user)
    await expect(page.get_by_test_id("vouchers")).to_contain_text(code)
    await expect(page.get_by_test_id("balance")).to_have_text("700")


def _issued(caption: str) -> int:
    found = re.search(r"Points issued: ([\d,]+)", caption)
    assert found is not None, caption
    return int(found.group(1).replace(",", ""))


async def test_dashboard_counts_the_points_issued_today(
    page: Page, site: harness_api.Api, make_wallet: Callable[..., Awaitable[str]]
) -> None:
    await sign_in(page, "ops-6", ADMIN_SCOPE)
    caption = page.locator("figcaption").filter(has_text="Points issued")
    before = _issued(await caption.inner_text())
    await make_wallet(1_234)
    await page.reload()
    after = _issued(await caption.inner_text())
    assert after - before == 1_234
    await expect(page.get_by_test_id("chart-redeemed")).to_be_visible()
