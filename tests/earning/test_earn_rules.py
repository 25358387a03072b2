"""Earn arithmetic (loyalty.earning.rules) as plain unit and property tests, no database: exact
integers rounded down, campaigns, caps, validation, clawbacks and pro rata."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyalty.earning.rules import (
    BookingFacts,
    Campaign,
    clawback_due,
    compute_earn,
    prorata,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def booking(
    amount: int, *, at: datetime = T0, product: str | None = "hotel", category: str | None = "city"
) -> BookingFacts:
    return BookingFacts(amount_paid=amount, paid_at=at, product_type=product, category=category)


def campaign(**overrides) -> Campaign:
    values = dict(
        campaign_id="c1",
        name="Double points",
        starts_at=T0 - timedelta(days=1),
        ends_at=T0 + timedelta(days=1),
        kind="multiplier",
        multiplier_pct=200,
    )
    values.update(overrides)
    return Campaign(**values)


def earn(amount: int, tier_pct: int = 100, campaigns=(), **kw) -> tuple[int, list[str]]:
    result = compute_earn(
        booking(amount, **kw),
        currency_per_point=1000,
        tier_code="t",
        tier_multiplier_pct=tier_pct,
        campaigns=campaigns,
    )
    return result.total, [line.rule for line in result.lines]


@pytest.mark.parametrize(
    ("amount", "tier_pct", "rate", "expected"),
    [
        (0, 100, 1000, 0),
        (999, 100, 1000, 0),
        (1000, 100, 1000, 1),
        (1999, 100, 1000, 1),
        (149_999, 100, 1000, 149),
        (149_999, 125, 1000, 187),  # 187.49875 rounds down
        (150_000, 125, 1000, 187),  # 187.5 rounds down
        (150_000, 150, 1000, 225),
        (799, 125, 1000, 0),  # 0.99875
        (800, 125, 1000, 1),
        (10**15, 150, 1000, 1_500_000_000_000),  # exact at the largest payments
        (12_345, 100, 1, 12_345),
    ],
)
def test_base_and_tier_round_down_at_the_boundaries(amount, tier_pct, rate, expected):
    result = compute_earn(
        booking(amount), currency_per_point=rate, tier_code="t", tier_multiplier_pct=tier_pct
    ).total
    assert result == expected
    assert type(result) is int


def test_multiplier_campaign_doubles_the_base_not_the_tier_bonus():
    total, rules = earn(100_000, 150, [campaign()])
    assert total == 100 + 50 + 100
    assert rules == ["base", "tier:t", "campaign:c1"]


def test_campaign_window_is_half_open():
    window = campaign(starts_at=T0, ends_at=T0 + timedelta(hours=1))
    assert earn(10_000, campaigns=[window], at=T0)[0] == 20
    assert earn(10_000, campaigns=[window], at=T0 - timedelta(microseconds=1))[0] == 10
    assert earn(10_000, campaigns=[window], at=T0 + timedelta(hours=1))[0] == 10


def test_product_and_category_filters():
    hotels_only = campaign(product_types=frozenset({"hotel"}))
    flights_only = campaign(campaign_id="c2", product_types=frozenset({"flight"}))
    beach_only = campaign(campaign_id="c3", categories=frozenset({"beach"}))
    total, rules = earn(10_000, campaigns=[hotels_only, flights_only, beach_only])
    assert (total, rules) == (20, ["base", "campaign:c1"])


def test_bonus_campaign_and_cap_per_booking():
    bonus = campaign(
        campaign_id="b",
        kind="bonus",
        multiplier_pct=100,
        bonus_points=500,
        cap_points_per_booking=300,
    )
    capped_double = campaign(cap_points_per_booking=40)
    result = compute_earn(
        booking(100_000),
        currency_per_point=1000,
        tier_code="gold",
        tier_multiplier_pct=100,
        campaigns=[capped_double, bonus],
    )
    assert result.total == 100 + 300 + 40
    assert result.as_metadata()["rules"][1] == {
        "rule": "campaign:b",
        "points": 300,
        "detail": "Double points: bonus, capped at 300",
    }


def test_campaign_validation():
    with pytest.raises(ValueError, match="end after"):
        campaign(ends_at=T0 - timedelta(days=2))
    with pytest.raises(ValueError, match="above 100"):
        campaign(multiplier_pct=100)
    with pytest.raises(ValueError, match="positive bonus"):
        campaign(kind="bonus", bonus_points=0)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "100"])
def test_amount_must_be_a_non_negative_integer(bad):
    with pytest.raises((TypeError, ValueError)):
        compute_earn(booking(bad), currency_per_point=1000, tier_code="t", tier_multiplier_pct=100)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"amount": -1}, ValueError),
        ({"amount": 1000.0}, TypeError),
        ({"amount": True}, TypeError),
        ({"tier_multiplier_pct": 0}, ValueError),
        ({"currency_per_point": 0}, ValueError),
        ({"currency_per_point": 2.5}, TypeError),
    ],
)
def test_bad_inputs_raise_the_matching_error(change, error):
    args = {"amount": 1000, "tier_multiplier_pct": 100, "currency_per_point": 1000, **change}
    with pytest.raises(error):
        compute_earn(booking(args.pop("amount")), tier_code="t", **args)


@given(amount=st.integers(0, 10**12), tier_pct=st.integers(1, 1000), rate=st.integers(1, 10**6))
def test_base_plus_tier_equals_the_single_rounding(amount, tier_pct, rate):
    result = compute_earn(
        booking(amount), currency_per_point=rate, tier_code="t", tier_multiplier_pct=tier_pct
    )
    expected = amount * tier_pct // (rate * 100)  # the whole multiplied amount, rounded once
    # With a multiplier below 100 the tier line would be negative; it is dropped, so the
    # total is the base alone.
    assert result.total == max(expected, amount // rate)
    assert result.total * rate * 100 <= amount * max(tier_pct, 100)


@given(amount=st.integers(0, 10**9), pct=st.integers(101, 1000))
def test_earn_is_monotonic_in_amount(amount, pct):
    c = [campaign(multiplier_pct=pct)]
    assert earn(amount, 125, c)[0] <= earn(amount + 1, 125, c)[0]


@given(earned=st.integers(0, 10**9), paid=st.integers(1, 10**9), data=st.data())
def test_partial_clawbacks_add_up_to_the_full_clawback(earned, paid, data):
    cuts = sorted(data.draw(st.lists(st.integers(0, paid), max_size=6)))
    clawed = 0
    for refunded_total in [*cuts, paid]:
        step = clawback_due(earned, paid, refunded_total, clawed)
        assert step >= 0
        clawed += step
        assert clawed <= earned
    assert clawed == earned


def test_prorata_rounds_down_and_rejects_nonsense():
    assert prorata(100, 1, 3) == 33
    assert prorata(100, 3, 3) == 100
    with pytest.raises(ValueError):
        prorata(100, 4, 3)
    with pytest.raises(ValueError):
        prorata(100, 1, 0)


def test_the_longest_validity_of_the_campaigns_that_added_points_sets_the_lot() -> None:
    from datetime import UTC, datetime, timedelta

    from loyalty.earning import rules

    now = datetime.now(UTC)

    def campaign(cid: str, months: int | None, product: str = "hotel") -> rules.Campaign:
        return rules.Campaign(
            campaign_id=cid,
            name=cid,
            starts_at=now - timedelta(hours=1),
            ends_at=now + timedelta(hours=1),
            kind="bonus",
            bonus_points=5,
            product_types=frozenset({product}),
            validity_months=months,
        )

    booking = rules.BookingFacts(amount_paid=10_000, paid_at=now, product_type="hotel")
    cases = [
        ([campaign("a", 3), campaign("b", 12)], 12),
        ([campaign("a", 3), campaign("b", 0)], 0),  # never is the longest
        ([campaign("a", None)], None),
        ([campaign("a", 3, product="flight"), campaign("b", None)], None),  # a did not apply
        ([], None),
    ]
    for campaigns, expected in cases:
        breakdown = rules.compute_earn(
            booking,
            currency_per_point=1000,
            tier_code="bronze",
            tier_multiplier_pct=100,
            campaigns=campaigns,
        )
        assert rules.lot_validity(campaigns, breakdown) == expected, campaigns
