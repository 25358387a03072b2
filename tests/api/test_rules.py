"""Earn and tier arithmetic as the wallet API shows it: exact integers, rounding down, no floats,
and the bounds of its inputs the same as the ledger's."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from loyalty import ledger
from loyalty.earning.rules import BookingFacts, compute_earn
from loyalty.tiers.rules import Ladder, TierStep, progress
from loyalty.wallets import schemas

LADDER = Ladder.of(
    [
        TierStep(code="gold", rank=3, threshold=20000, basis="lifetime"),
        TierStep(code="bronze", rank=1, threshold=0, basis="lifetime"),
        TierStep(code="silver", rank=2, threshold=5000, basis="lifetime"),
    ]
)


def earned(amount_paid: int, multiplier: int, rate: int) -> int:
    booking = BookingFacts(amount_paid=amount_paid, paid_at=datetime(2026, 1, 1, tzinfo=UTC))
    return compute_earn(
        booking, currency_per_point=rate, tier_code="t", tier_multiplier_pct=multiplier
    ).total


@pytest.mark.parametrize(
    ("amount_paid", "multiplier", "rate", "points"),
    [
        (0, 100, 1000, 0),
        (999, 100, 1000, 0),
        (1000, 100, 1000, 1),
        (149_999, 100, 1000, 149),
        (150_000, 125, 1000, 187),  # 187.5 rounds down
        (150_000, 150, 1000, 225),
        (799, 125, 1000, 0),  # 0.99875
        (800, 125, 1000, 1),
        (10**15, 150, 1000, 1_500_000_000_000),
        (12_345, 100, 1, 12_345),
    ],
)
def test_earn_rounds_down(amount_paid, multiplier, rate, points):
    result = earned(amount_paid, multiplier, rate)
    assert result == points
    assert type(result) is int


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"amount_paid": -1}, ValueError),
        ({"amount_paid": 1000.0}, TypeError),
        ({"amount_paid": True}, TypeError),
        ({"multiplier": 0}, ValueError),
        ({"rate": 0}, ValueError),
        ({"rate": 2.5}, TypeError),
    ],
)
def test_earn_rejects_bad_inputs(kwargs, error):
    args = {"amount_paid": 1000, "multiplier": 100, "rate": 1000, **kwargs}
    with pytest.raises(error):
        earned(**args)


def test_next_tier_follows_rank_not_list_order():
    assert [LADDER.above(code) for code in ("bronze", "silver", "gold", "platinum")] == [
        LADDER.get("silver"),
        LADDER.get("gold"),
        None,
        None,
    ]


@pytest.mark.parametrize(("lifetime", "to_go"), [(0, 5000), (4999, 1), (5000, 0), (9000, 0)])
def test_points_to_the_next_tier(lifetime, to_go):
    ahead = progress(LADDER, "bronze", lifetime=lifetime, trailing=0)
    assert ahead.next_tier == LADDER.get("silver")
    assert ahead.points_to_next == to_go


def test_schema_bounds_match_the_ledger():
    assert schemas.MAX_POINTS == ledger.MAX_POINTS
    assert set(schemas.TxType.__args__) == set(ledger.TX_TYPES)
