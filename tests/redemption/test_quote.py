"""The checkout quote for the storefront's slider: the rule (pure), then the endpoint
`POST /wallets/{userId}/redemption-quote` on the tier ladder the migrations seed, which holds
nothing and agrees with what a redeem then accepts and refuses."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from loyalty.core.errors import InsufficientPoints
from loyalty.redemption.errors import CurrencyNotSupported, RedemptionCapExceeded
from loyalty.redemption.quote import QuoteFacts, quote
from loyalty.redemption.schemas import RedemptionQuoteBody
from tests.api.snapshots import snapshot
from tests.harness.api import Api

MakeWallet = Callable[..., Awaitable[str]]

# The seeded ladder's caps: percent of the order, no absolute cap.
SEEDED_CAPS = {"bronze": 30, "silver": 50, "gold": 100}


def _facts(
    tier: str = "bronze", balance: int = 1_000_000, held: int = 0, **caps: Any
) -> QuoteFacts:
    cap_pct = caps.get("cap_pct", SEEDED_CAPS.get(tier))
    return QuoteFacts(
        tier=tier, balance=balance, held=held, cap_pct=cap_pct, cap_points=caps.get("cap_points")
    )


def _quote(facts: QuoteFacts, order: int = 100_000, points: int | None = None, **kw: Any):
    body = RedemptionQuoteBody(
        order_amount=order, currency=kw.pop("currency", "VND"), points=points
    )
    return quote("u1", body, facts, currency="VND", point_value_minor=kw.pop("value", 1))


# --- the rule ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tier", "max_points", "bound"),
    [
        ("bronze", 30_000, "tier_cap"),
        ("silver", 50_000, "tier_cap"),
        ("gold", 100_000, "order_amount"),
    ],
)
def test_each_tier_bounds_a_rich_wallet(tier: str, max_points: int, bound: str) -> None:
    q = _quote(_facts(tier))
    assert (q.max_points, q.bound, q.tier_cap_points) == (max_points, bound, max_points)
    assert (q.points, q.discount_minor, q.amount_to_charge_minor) == (
        max_points,
        max_points,
        100_000 - max_points,
    )


def test_available_points_below_the_cap_bound_the_quote() -> None:
    q = _quote(_facts("gold", balance=1_000, held=300))
    assert (q.available, q.max_points, q.bound, q.tier_cap_points) == (700, 700, "balance", 100_000)
    assert (q.discount_minor, q.amount_to_charge_minor) == (700, 99_300)


def test_an_absolute_cap_and_the_point_value() -> None:
    capped = _quote(_facts("gold", cap_points=2_500))
    assert (capped.max_points, capped.bound) == (2_500, "tier_cap")
    # 3 minor units a point: 1,000 minor units are worth 333 points, 999 of discount.
    dear = _quote(_facts("gold"), order=1_000, value=3)
    assert (dear.max_points, dear.bound, dear.discount_minor, dear.amount_to_charge_minor) == (
        333,
        "order_amount",
        999,
        1,
    )


def test_ties_name_the_order_then_the_tier() -> None:
    assert _quote(_facts("bronze", balance=30_000)).bound == "tier_cap"
    assert _quote(_facts("gold", balance=100_000)).bound == "order_amount"
    assert _quote(_facts("bronze", balance=29_999)).bound == "balance"


def test_a_given_number_of_points() -> None:
    q = _quote(_facts("silver"), points=1_234)
    assert (q.points, q.discount_minor, q.amount_to_charge_minor, q.max_points) == (
        1_234,
        1_234,
        98_766,
        50_000,
    )


def test_an_empty_wallet_may_apply_nothing() -> None:
    q = _quote(_facts("bronze", balance=0))
    assert (q.max_points, q.bound, q.points, q.amount_to_charge_minor) == (0, "balance", 0, 100_000)


def test_refusals_are_the_redeems() -> None:
    with pytest.raises(RedemptionCapExceeded) as cap:
        _quote(_facts("bronze"), points=30_001)
    assert cap.value.details == {"tier": "bronze", "max_points": 30_000, "requested": 30_001}
    # Within the cap but beyond the available points (the cap is checked first, as the hold does).
    with pytest.raises(InsufficientPoints) as short:
        _quote(_facts("bronze", balance=1_000, held=500), points=600)
    assert short.value.details == {"available": 500, "requested": 600}
    with pytest.raises(CurrencyNotSupported):
        _quote(_facts(), currency="USD")
    assert _quote(_facts(), currency="vnd").currency == "VND"  # compared case-blind, as redeem does


# --- the endpoint -----------------------------------------------------------------------------


async def _post(api: Api, user: str, headers: dict[str, str], **body: Any):
    body = {"order_amount": 100_000, "currency": "VND", **body}
    return await api.http.post(f"/wallets/{user}/redemption-quote", json=body, headers=headers)


@pytest.mark.parametrize(
    ("tier", "max_points", "bound"),
    [
        ("bronze", 30_000, "tier_cap"),
        ("silver", 50_000, "tier_cap"),
        ("gold", 100_000, "order_amount"),
    ],
)
async def test_quote_of_each_seeded_tier(
    api: Api, engine: AsyncEngine, make_wallet: MakeWallet, tier: str, max_points: int, bound: str
) -> None:
    user = await make_wallet(200_000, tier=tier)
    before = await snapshot(engine, user)

    response = await _post(api, user, api.customer(user))

    assert response.status_code == 200, response.text
    assert response.json() == {
        "user_id": user,
        "tier": tier,
        "currency": "VND",
        "order_amount": 100_000,
        "balance": 200_000,
        "held": 0,
        "available": 200_000,
        "tier_cap_points": max_points,
        "max_points": max_points,
        "bound": bound,
        "points": max_points,
        "discount_minor": max_points,
        "amount_to_charge_minor": 100_000 - max_points,
    }
    assert await snapshot(engine, user) == before  # no hold, no posting, no write


async def test_balance_below_the_cap_and_held_points(api: Api, make_wallet: MakeWallet) -> None:
    user = await make_wallet(10_000, held=2_000)  # bronze: 30,000 of a 100,000 order

    response = await _post(api, user, api.service, points=5_000)

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["available"], body["max_points"], body["bound"]) == (8_000, 8_000, "balance")
    assert (body["points"], body["discount_minor"], body["amount_to_charge_minor"]) == (
        5_000,
        5_000,
        95_000,
    )


async def test_callers_and_refusals(api: Api, make_wallet: MakeWallet, new_user_id) -> None:
    user = await make_wallet(1_000)

    other = await _post(api, user, api.customer("someone-else"))
    assert other.status_code == 403, other.text
    assert other.json()["code"] == "forbidden"
    assert (await _post(api, user, api.admin)).status_code == 403  # not a checkout party
    assert (await api.http.post(f"/wallets/{user}/redemption-quote", json={})).status_code == 401

    currency = await _post(api, user, api.service, currency="USD")
    assert (currency.status_code, currency.json()["code"]) == (422, "currency_not_supported")
    for bad in ({"points": 0}, {"order_amount": 10.5}, {"points": "5"}, {"extra": 1}):
        invalid = await _post(api, user, api.service, **bad)
        assert (invalid.status_code, invalid.json()["code"]) == (422, "validation_error"), bad
    cap = await _post(api, user, api.service, points=30_001)
    assert (cap.status_code, cap.json()["code"]) == (422, "redemption_cap_exceeded")
    short = await _post(api, user, api.service, points=1_001)
    assert (short.status_code, short.json()["code"]) == (422, "insufficient_points")
    nobody = await _post(api, new_user_id(), api.service)
    assert (nobody.status_code, nobody.json()["code"]) == (404, "wallet_not_found")


@pytest.mark.usefixtures("worker")
async def test_a_redeem_accepts_the_quotes_most_and_refuses_one_more(
    api: Api, make_wallet: MakeWallet
) -> None:
    user = await make_wallet(50_000, tier="silver")
    order = {"order_amount": 40_001, "currency": "VND"}
    most = (await _post(api, user, api.service, **order)).json()
    assert (most["max_points"], most["bound"]) == (20_000, "tier_cap")  # 50% of 40,001

    def redeem(points: int):
        booking = f"bk-{uuid.uuid4().hex[:12]}"
        body = {"booking_id": booking, **order, "points": points}
        return api.http.post(f"/wallets/{user}/redeem", json=body, headers=api.service)

    refused = await redeem(most["max_points"] + 1)
    assert (refused.status_code, refused.json()["code"]) == (422, "redemption_cap_exceeded")
    held = await redeem(most["max_points"])
    assert held.status_code == 200, held.text
    assert held.json()["amount_to_charge_minor"] == most["amount_to_charge_minor"]
    # The hold shows in the next quote: less is available (the cap still bounds this order).
    after = (await _post(api, user, api.service, **order)).json()
    assert (after["held"], after["available"], after["max_points"]) == (20_000, 30_000, 20_000)
