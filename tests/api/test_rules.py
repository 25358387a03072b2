"""Earn and tier arithmetic: exact integers, rounding down, no floats anywhere."""

from __future__ import annotations

import pytest

from loyalty import ledger, schemas
from loyalty.rules import Tier, earn_points, next_tier, points_to_threshold

TIERS = [
    Tier("gold", "Gold", 3, 20000, "lifetime", 150),
    Tier("bronze", "Bronze", 1, 0, "lifetime", 100),
    Tier("silver", "Silver", 2, 5000, "lifetime", 125),
]


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
def test_earn_points_rounds_down(amount_paid, multiplier, rate, points):
    result = earn_points(amount_paid, earn_multiplier_pct=multiplier, currency_per_point=rate)
    assert result == points
    assert type(result) is int


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"amount_paid": -1}, ValueError),
        ({"amount_paid": 1000.0}, TypeError),
        ({"amount_paid": True}, TypeError),
        ({"earn_multiplier_pct": 0}, ValueError),
        ({"currency_per_point": 0}, ValueError),
        ({"currency_per_point": 2.5}, TypeError),
    ],
)
def test_earn_points_rejects_bad_inputs(kwargs, error):
    args = {"amount_paid": 1000, "earn_multiplier_pct": 100, "currency_per_point": 1000, **kwargs}
    with pytest.raises(error):
        earn_points(args.pop("amount_paid"), **args)


def test_next_tier_follows_rank_not_list_order():
    assert next_tier(TIERS, "bronze") == TIERS[2]
    assert next_tier(TIERS, "silver") == TIERS[0]
    assert next_tier(TIERS, "gold") is None
    with pytest.raises(ValueError, match="unknown tier"):
        next_tier(TIERS, "platinum")


@pytest.mark.parametrize(
    ("threshold", "basis", "to_go"),
    [(5000, 0, 5000), (5000, 4999, 1), (5000, 5000, 0), (5000, 9000, 0)],
)
def test_points_to_threshold(threshold, basis, to_go):
    assert points_to_threshold(threshold, basis) == to_go


def test_schema_bounds_match_the_ledger():
    assert schemas.MAX_POINTS == ledger.MAX_POINTS
    assert set(schemas.TxType.__args__) == set(ledger.TX_TYPES)
