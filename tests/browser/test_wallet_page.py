"""The Wallet tab in a browser: the numbers the API answers, and only the customer's own."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from playwright.async_api import Page, expect

from tests.browser.conftest import sign_in
from tests.harness import api as harness_api


async def test_customer_sees_their_wallet_as_the_api_answers(
    page: Page, site: harness_api.Api, make_wallet: Callable[..., Awaitable[str]]
) -> None:
    user = await make_wallet(12_345, spent=2_000, held=345)
    await sign_in(page, user)
    await expect(page).to_have_url(f"{site.url}/wallet")
    api_wallet = await site.wallet(user)
    assert api_wallet["held"] > 0
    for key in ("balance", "held", "available"):
        await expect(page.get_by_test_id(key)).to_have_text(f"{api_wallet[key]:,}")
    await expect(page.get_by_test_id("tier")).to_have_text(api_wallet["tier_details"]["name"])
    expiry = api_wallet["next_expiry"]
    await expect(page.get_by_test_id("next-expiry")).to_contain_text(
        f"{expiry['points']:,} points expire on {expiry['expires_at'][:10]}"
    )
    await expect(page.get_by_role("progressbar")).to_be_visible()
    rows = page.get_by_test_id("transactions").locator("tbody tr")
    assert await rows.count() >= 2
    # the type filter narrows the list to that type
    await page.get_by_label("earn", exact=True).check()
    await page.get_by_role("button", name="Filter").click()
    types = (
        await page.get_by_test_id("transactions")
        .locator("tbody tr td:nth-child(2)")
        .all_inner_texts()
    )
    assert types and set(types) == {"earn"}


async def test_customer_cannot_open_another_wallet_or_the_backoffice(
    page: Page, site: harness_api.Api, make_wallet: Callable[..., Awaitable[str]]
) -> None:
    mine, theirs = await make_wallet(100), await make_wallet(900)
    await sign_in(page, mine)
    response = await page.goto(f"/wallet?user={theirs}")
    assert response is not None and response.status == 403
    await expect(page.get_by_text("900")).to_have_count(0)
    response = await page.goto("/admin")
    assert response is not None and response.status == 403


async def test_pages_need_a_session_and_forms_need_the_csrf_token(
    page: Page, site: harness_api.Api
) -> None:
    await page.goto("/wallet")
    await expect(page).to_have_url(f"{site.url}/signin?next=/wallet")
    # a form posted without the page's CSRF token changes nothing
    answer = await page.request.post("/signin", form={"user_id": "u-1", "scope": "wallet:self"})
    assert answer.status == 403
    # bad input re-renders the form with the error next to the field
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#user_id-error")).to_be_visible()


async def test_sign_in_and_the_wallet_work_with_the_keyboard_alone(
    page: Page, site: harness_api.Api, make_wallet: Callable[..., Awaitable[str]]
) -> None:
    user = await make_wallet(4_200)
    await page.goto("/signin")
    await page.keyboard.press("Tab")  # the skip link
    await page.keyboard.press("Tab")  # Sign in (header)
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("User id")).to_be_focused()
    await page.keyboard.type(user)
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Sign in as")).to_be_focused()
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("button", name="Sign in")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("balance")).to_have_text("4,200")
    await page.get_by_label("earn", exact=True).focus()
    await page.keyboard.press("Space")
    await expect(page.get_by_label("earn", exact=True)).to_be_checked()


async def test_transactions_page_and_filter_by_date(
    page: Page, site: harness_api.Api, make_wallet: Callable[..., Awaitable[str]]
) -> None:
    user = await make_wallet(100)
    for n in range(11):
        answer = await site.http.post(
            f"/wallets/{user}/transactions",
            headers=site.auth.admin(key=f"page-{user}-{n}"),
            json={"points": n + 1, "reason": f"goodwill {n + 1}"},
        )
        assert answer.status_code == 201, answer.text
    await sign_in(page, user)
    rows = page.get_by_test_id("transactions").locator("tbody tr")
    await expect(rows).to_have_count(10)
    await expect(rows.first).to_contain_text("goodwill 11")
    await page.get_by_role("link", name="Older transactions").click()
    await expect(rows).to_have_count(2)
    await expect(rows.last).to_contain_text("test seed")
    await expect(page.get_by_role("link", name="Older transactions")).to_have_count(0)

    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    await page.goto("/wallet")
    await page.get_by_label("To date").fill(yesterday)
    await page.get_by_role("button", name="Filter").click()
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_text("No transactions.")
    await page.goto("/wallet?since=not-a-date")
    await expect(page.get_by_text("check the filters")).to_be_visible()
