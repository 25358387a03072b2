"""The backoffice in a browser: an adjustment (a double click posts once; a missing reason is
refused next to its field), the tier ladder (a bad ladder shows its error and changes nothing),
a campaign created and ended, customers by tier exported as CSV."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from playwright.async_api import Page, expect

from tests.browser.conftest import sign_in
from tests.harness import api as harness_api

ADMIN_SCOPE = "loyalty:admin"


async def _adjustments(site: harness_api.Api, user: str) -> list[dict[str, object]]:
    answer = await site.http.get(
        f"/wallets/{user}/transactions", params={"type": "adjustment"}, headers=site.admin
    )
    assert answer.status_code == 200, answer.text
    items: list[dict[str, object]] = answer.json()["items"]
    return items


async def test_admin_adjusts_a_balance_once_for_a_double_click(
    page: Page, site: harness_api.Api, make_wallet: Callable[..., Awaitable[str]]
) -> None:
    user = await make_wallet(1_000)
    await sign_in(page, "ops-1", ADMIN_SCOPE)
    await page.get_by_label("Find a customer by user id").fill(user)
    await page.get_by_role("button", name="Open").click()
    await expect(page.get_by_test_id("balance")).to_have_text("1,000")

    # no reason: refused next to the field, nothing posted
    await page.get_by_label("Points (negative to debit)").fill("250")
    await page.get_by_role("button", name="Post adjustment").click()
    await expect(page.locator("#reason-error")).to_be_visible()
    assert await _adjustments(site, user) == []

    await page.get_by_label("Reason (required)").fill("goodwill: late check-in")
    key = await page.locator("input[name=idempotency_key]").input_value()
    csrf = await page.locator("input[name=csrf_token]").first.input_value()
    await page.get_by_role("button", name="Post adjustment").dblclick()
    await expect(page.get_by_role("status")).to_contain_text("Adjustment posted")
    await expect(page.get_by_test_id("balance")).to_have_text("1,250")
    # the same form submitted again (a browser that did send both clicks) replays the first
    again = await page.request.post(
        f"/admin/customers/{user}/adjust",
        form={
            "csrf_token": csrf,
            "idempotency_key": key,
            "points": "250",
            "reason": "goodwill: late check-in",
        },
    )
    assert again.ok
    adjustments = await _adjustments(site, user)
    assert [a["amount"] for a in adjustments] == [250]
    assert (await site.wallet(user))["balance"] == 1_250


async def test_admin_edits_the_ladder_and_a_bad_ladder_shows_its_error(
    page: Page, site: harness_api.Api
) -> None:
    before = (await site.http.get("/tiers", headers=site.admin)).json()["tiers"]
    gold = next(t for t in before if t["code"] == "gold")
    await sign_in(page, "ops-2", ADMIN_SCOPE, next="/admin/tiers")
    form = page.get_by_test_id("tier-gold")
    await form.get_by_label("Threshold (points)").fill("10")
    await form.get_by_role("button", name="Save Gold").click()
    error = page.get_by_test_id("tier-gold").locator("#gold-threshold-error")
    await expect(error).to_contain_text("thresholds are out of order")
    after = (await site.http.get("/tiers", headers=site.admin)).json()["tiers"]
    assert after == before

    # a good edit is saved, then put back (the ladder is shared by the whole test session)
    try:
        form = page.get_by_test_id("tier-gold")
        await form.get_by_label("Threshold (points)").fill(str(gold["threshold"]))
        await form.get_by_label("Earn multiplier (%)").fill("175")
        await form.get_by_role("button", name="Save Gold").click()
        await expect(page.get_by_role("status")).to_have_text("Tier gold saved.")
        saved = (await site.http.get("/tiers", headers=site.admin)).json()["tiers"]
        assert next(t for t in saved if t["code"] == "gold")["earn_multiplier_pct"] == 175
    finally:
        await site.http.patch(
            "/tiers/gold",
            headers=site.admin,
            json={"earn_multiplier_pct": gold["earn_multiplier_pct"]},
        )


async def test_admin_creates_and_ends_a_campaign(page: Page, site: harness_api.Api) -> None:
    campaign_id = f"browser-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    await sign_in(page, "ops-3", ADMIN_SCOPE, next="/admin/campaigns")
    await page.get_by_label("Campaign id").fill(campaign_id)
    await page.get_by_label("Name", exact=True).last.fill("Browser double")
    await page.get_by_label("Multiplier (%, above 100)").fill("50")  # refused: not above 100
    # only a product type no other test earns on: the campaign must not change their points
    await page.get_by_label("Product types (comma separated, empty: all)").fill("browser-test")
    await page.get_by_label("Starts at (UTC)").last.fill(
        (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    )
    await page.get_by_label("Ends at (UTC)").last.fill(
        (now + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    )
    await page.get_by_role("button", name="Create campaign").click()
    await expect(page.locator("#new-multiplier_pct-error")).to_be_visible()
    await page.get_by_label("Multiplier (%, above 100)").fill("200")
    await page.get_by_role("button", name="Create campaign").click()
    await expect(page.get_by_role("status")).to_have_text(f"Campaign {campaign_id} saved.")
    row = page.get_by_test_id("campaigns").get_by_role("row").filter(has_text=campaign_id)
    await expect(row).to_contain_text("running")
    stored = (await site.http.get(f"/campaigns/{campaign_id}", headers=site.admin)).json()
    assert (stored["multiplier_pct"], stored["product_types"]) == (200, ["browser-test"])
    # edit: a cap per booking
    await row.get_by_text("Edit").click()
    await row.get_by_label("Cap per booking (empty: none)").fill("500")
    await row.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_have_text(f"Campaign {campaign_id} saved.")
    await expect(row).to_contain_text("cap 500")
    stored = (await site.http.get(f"/campaigns/{campaign_id}", headers=site.admin)).json()
    assert stored["cap_points_per_booking"] == 500
    await row.get_by_role("button", name=f"End {campaign_id} now").click()
    await expect(row).to_contain_text("finished")


async def test_admin_exports_customers_by_tier_as_csv(
    page: Page, site: harness_api.Api, make_wallet: Callable[..., Awaitable[str]]
) -> None:
    gold = await make_wallet(31_337, tier="gold")
    bronze = await make_wallet(31_337)
    await sign_in(page, "ops-4", ADMIN_SCOPE, next="/admin/customers")
    await page.get_by_label("Gold").check()
    await page.get_by_label("Balance at least").fill("31337")
    await page.get_by_label("Balance at most").fill("31337")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.get_by_test_id("customers")).to_contain_text(gold)
    await expect(page.get_by_test_id("customers")).not_to_contain_text(bronze)
    async with page.expect_download() as info:
        await page.get_by_test_id("csv").click()
    download = await info.value
    path = await download.path()
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    users = {r["user_id"] for r in rows}
    assert gold in users and bronze not in users
    assert {r["tier"] for r in rows} == {"gold"}
