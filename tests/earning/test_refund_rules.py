"""Refund arithmetic (loyalty.earning.rules.clawback_target): cumulative pro rata, boundaries, and
properties that keep a customer from keeping points on refunded money or losing paid points."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyalty.earning.rules import clawback_target


@pytest.mark.parametrize(
    ("earned", "paid", "refunded", "full", "target"),
    [
        (700, 700_000, 0, False, 0),
        (700, 700_000, 999, False, 0),  # 0.999 of a point: rounds down to nothing
        (700, 700_000, 1_000, False, 1),
        (700, 700_000, 233_333, False, 233),
        (700, 700_000, 699_999, False, 699),
        (700, 700_000, 700_000, False, 700),  # reaching the amount paid is a full refund
        (700, 700_000, 900_000, False, 700),  # refunded more than paid: still all, never more
        (700, 700_000, 1, True, 700),  # the full flag wins over the amount
        (50, 0, 0, False, 0),  # nothing paid in money: only a full refund takes points
        (50, 0, 0, True, 50),
        (0, 100_000, 50_000, False, 0),
    ],
)
def test_clawback_target_boundaries(earned, paid, refunded, full, target):
    assert clawback_target(earned, paid, refunded, full) == target


@given(
    earned=st.integers(0, 10**9),
    paid=st.integers(1, 10**12),
    data=st.data(),
)
def test_refunds_in_any_split_move_exactly_the_full_amount(earned, paid, data):
    """However the refunds are split, each step moves target(total so far) minus what already
    moved: never negative, never more than earned, and all of it once everything is refunded."""
    parts = data.draw(st.lists(st.integers(0, paid), max_size=8))
    refunded = moved = 0
    for part in parts:
        refunded = min(paid, refunded + part)
        step = clawback_target(earned, paid, refunded, False) - moved
        assert step >= 0
        moved += step
        assert moved <= earned
    moved += clawback_target(earned, paid, paid, False) - moved
    assert moved == earned


@given(earned=st.integers(0, 10**9), paid=st.integers(1, 10**12), refunded=st.integers(0, 10**12))
def test_target_never_exceeds_the_exact_share(earned, paid, refunded):
    target = clawback_target(earned, paid, refunded, False)
    assert 0 <= target <= earned
    if refunded < paid:  # rounded down: the customer keeps the fraction of a point
        assert target * paid <= earned * refunded
        assert (target + 1) * paid > earned * refunded


@given(earned=st.integers(0, 10**6), paid=st.integers(1, 10**9), a=st.integers(0, 10**9))
def test_target_is_monotonic_in_the_refunded_amount(earned, paid, a):
    assert clawback_target(earned, paid, a, False) <= clawback_target(earned, paid, a + 1, False)
