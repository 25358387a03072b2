"""The storefront's points step in a browser: the slider's bounds per tier, the live summary,
a declined card then a good one until the saga captures, an all-points order, a release."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from playwright.async_api import Page, expect

from api.pages.session import sign_csrf
from api.tokens import mint_token
from tests.browser.conftest import sign_in
from tests.harness import api as harness_api

GOOD_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000341"  # attaches, then is declined at charge

pytestmark = pytest.mark.usefixtures("worker")


async def _api_quote(site: harness_api.Api, user: str, amount: int) -> dict[str, object]:
    answer = await site.http.post(
        f"/wallets/{user}/redemption-quote",
        headers=site.customer(user),
        json={"order_amount": amount, "currency": "VND"},
    )
    assert answer.status_code == 200, answer.text
    quote: dict[str, object] = answer.json()
    return quote


async def _fill_card(page: Page, number: str) -> None:
    card = page.locator("#card")
    await card.get_by_placeholder("number").fill(number)
    await card.get_by_placeholder("exp_month").fill("12")
    await card.get_by_placeholder("exp_year").fill("30")
    await card.get_by_placeholder("cvc").fill("123")


@pytest.mark.parametrize(
    ("tier", "bound", "max_points"), [("bronze", "tier_cap", 30_000), ("gold", "balance", 50_000)]
)
async def test_slider_is_bounded_by_the_quote_for_each_tier(
    page: Page,
    site: harness_api.Api,
    make_wallet: Callable[..., Awaitable[str]],
    booking_id: str,
    tier: str,
    bound: str,
    max_points: int,
) -> None:
    user = await make_wallet(50_000, tier=tier)
    quote = await _api_quote(site, user, 100_000)
    assert (quote["bound"], quote["max_points"]) == (bound, max_points)
    await sign_in(page, user, next=f"/checkout/{booking_id}?amount=100000")
    slider = page.get_by_label("Points to use (slider)")
    await expect(slider).to_have_attribute("max", str(max_points))
    await expect(page.get_by_test_id("max-points")).to_have_text(f"{max_points:,}")
    # typing past the bound is clamped to it; the summary follows
    number = page.get_by_label("Points to use", exact=True)
    await number.fill(str(max_points + 5_000))
    await number.dispatch_event("change")
    await expect(number).to_have_value(str(max_points))
    await expect(page.get_by_test_id("final")).to_have_text(f"{100_000 - max_points:,} VND")
    await slider.fill("1000")
    await expect(number).to_have_value("1000")
    await expect(page.get_by_test_id("deduction")).to_have_text("-1,000 VND")
    await expect(page.get_by_test_id("final")).to_have_text("99,000 VND")


async def test_points_then_a_declined_card_then_a_good_one_until_captured(
    page: Page,
    site: harness_api.Api,
    make_wallet: Callable[..., Awaitable[str]],
    booking_id: str,
) -> None:
    user = await make_wallet(20_000)
    await sign_in(page, user, next=f"/checkout/{booking_id}?amount=200000")
    await page.get_by_label("Points to use", exact=True).fill("5000")
    await expect(page.get_by_test_id("final")).to_have_text("195,000 VND")
    await page.get_by_role("button", name="Apply points and continue").click()
    await expect(page.get_by_text("To pay by card: 195,000 VND")).to_be_visible()
    assert (await site.wallet(user))["held"] == 5_000

    await _fill_card(page, DECLINED_CARD)
    await page.get_by_role("button", name="Pay by card").click()
    await expect(page.get_by_test_id("outcome")).to_contain_text("declined")
    await _fill_card(page, GOOD_CARD)
    await page.get_by_role("button", name="Pay by card").click()
    await expect(page.get_by_test_id("outcome")).to_have_text(
        "Paid. Your points were applied to this order.", timeout=20_000
    )
    state = (
        await site.http.get(f"/wallets/{user}/redemptions/{booking_id}", headers=site.service)
    ).json()
    assert (state["status"], state["payment_failures"]) == ("captured", 1)
    wallet = await site.wallet(user)
    assert (wallet["balance"], wallet["held"]) == (15_000, 0)


async def test_an_all_points_order_skips_the_card(
    page: Page,
    site: harness_api.Api,
    make_wallet: Callable[..., Awaitable[str]],
    booking_id: str,
) -> None:
    user = await make_wallet(50_000, tier="gold")
    await sign_in(page, user, next=f"/checkout/{booking_id}?amount=30000")
    await expect(page.get_by_test_id("final")).to_have_text("0 VND")
    await page.get_by_role("button", name="Apply points and continue").click()
    await expect(page.locator("#card-fieldset")).to_be_hidden()
    await page.get_by_role("button", name="Place order").click()
    await expect(page.get_by_test_id("outcome")).to_have_text(
        "Paid. Your points were applied to this order.", timeout=20_000
    )
    wallet = await site.wallet(user)
    assert (wallet["balance"], wallet["held"]) == (20_000, 0)


async def test_cancelling_gives_the_points_back(
    page: Page,
    site: harness_api.Api,
    make_wallet: Callable[..., Awaitable[str]],
    booking_id: str,
) -> None:
    user = await make_wallet(10_000)
    await sign_in(page, user, next=f"/checkout/{booking_id}?amount=100000")
    await page.get_by_role("button", name="Apply points and continue").click()
    await expect(page.locator("#pay-what")).to_contain_text("To pay by card")  # the card step
    await page.get_by_role("button", name="Cancel and give my points back").click()
    await expect(page.get_by_test_id("outcome")).to_have_text(
        "Cancelled: your points were given back.", timeout=20_000
    )
    assert (await site.wallet(user))["held"] == 0
    # another customer's session learns nothing of this checkout
    stranger = mint_token(site.settings, sub="someone-else", scopes=["wallet:self"])
    headers = {
        "Cookie": f"loyalty_session={stranger}; loyalty_csrf=stranger-nonce",
        "X-CSRF-Token": sign_csrf(site.settings, "stranger-nonce"),
        "Content-Type": "application/json",
    }
    for method, path in (("GET", "status"), ("POST", "release"), ("POST", "confirm")):
        answer = await site.http.request(method, f"/checkout/{booking_id}/{path}", headers=headers)
        assert answer.status_code == 404, answer.text
        assert answer.json()["code"] == "not_found"
