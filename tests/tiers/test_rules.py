"""Tier rules as plain functions: ladder validation, classification at threshold edges, the
trailing window's edges, the downgrade grace rule, progress and the next evaluation time."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyalty.tiers.rules import (
    InvalidLadder,
    Ladder,
    TierStep,
    decide,
    in_trailing_window,
    next_evaluation_at,
    notification_key,
    progress,
    realtime,
    realtime_source,
    trailing_window_start,
    validate_ladder,
)

BRONZE = TierStep(code="bronze", rank=1, threshold=0, basis="lifetime")
SILVER = TierStep(code="silver", rank=2, threshold=5000, basis="lifetime")
GOLD = TierStep(code="gold", rank=3, threshold=20000, basis="trailing_12m")
LADDER = Ladder.of([GOLD, BRONZE, SILVER])  # any input order; sorted by rank
T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
GRACE = timedelta(days=30)


def step(code: str, rank: int, threshold: int, basis: str = "lifetime") -> TierStep:
    return TierStep(code=code, rank=rank, threshold=threshold, basis=basis)


# --- ladder validation -------------------------------------------------------------------------


def test_a_valid_ladder_is_sorted_by_rank() -> None:
    assert [s.code for s in LADDER.steps] == ["bronze", "silver", "gold"]
    assert LADDER.lowest == BRONZE


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([], "at least one tier"),
        ([step("a", 1, 0), step("b", 2, 100), step("c", 3, 100)], "overlap"),
        ([step("a", 1, 0), step("b", 2, 500), step("c", 3, 400)], "out of order"),
        ([step("a", 1, 0), step("b", 3, 500), step("c", 2, 600)], "out of order"),
        ([step("a", 1, 10), step("b", 2, 500)], "threshold 0"),
        ([step("a", 1, 0), step("a", 2, 500)], "code"),
        ([step("a", 1, 0), step("b", 1, 500)], "rank"),
        ([step("a", 1, 0), step("b", 2, 0)], "overlap"),
    ],
)
def test_bad_ladders_are_rejected_with_a_clear_error(steps: list[TierStep], message: str) -> None:
    with pytest.raises(InvalidLadder, match=message) as caught:
        validate_ladder(steps)
    assert caught.value.code == "invalid_tier_ladder"
    assert caught.value.status_code == 422


def test_ranks_need_not_be_contiguous() -> None:
    validate_ladder([step("a", 10, 0), step("b", 20, 1), step("c", 35, 2)])


@given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=8))
def test_validation_accepts_exactly_strictly_increasing_thresholds_from_zero(
    thresholds: list[int],
) -> None:
    steps = [step(f"t{i}", i, t) for i, t in enumerate(thresholds)]
    ok = thresholds[0] == 0 and all(a < b for a, b in itertools.pairwise(thresholds))
    if ok:
        validate_ladder(steps)
    else:
        with pytest.raises(InvalidLadder):
            validate_ladder(steps)


# --- classification ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lifetime", "trailing", "tier"),
    [
        (0, 0, "bronze"),
        (4999, 4999, "bronze"),
        (5000, 0, "silver"),
        (5001, 0, "silver"),
        (19999, 19999, "silver"),
        (10**9, 19999, "silver"),  # gold counts the trailing window only
        (20000, 20000, "gold"),
        (4999, 20000, "gold"),  # highest tier reached wins, whatever the lower tiers' bases
        (0, -50, "bronze"),  # clawbacks can push the window below zero: still the lowest tier
    ],
)
def test_tier_at_threshold_edges(lifetime: int, trailing: int, tier: str) -> None:
    assert LADDER.earned(lifetime=lifetime, trailing=trailing).code == tier


@given(
    st.integers(min_value=0, max_value=10**12), st.integers(min_value=-(10**6), max_value=10**12)
)
def test_earned_tier_is_the_highest_reached(lifetime: int, trailing: int) -> None:
    earned = LADDER.earned(lifetime=lifetime, trailing=trailing)
    points = {"lifetime": lifetime, "trailing_12m": trailing}
    reached = [s for s in LADDER.steps if points[s.basis] >= s.threshold] or [BRONZE]
    assert earned == max(reached, key=lambda s: s.rank)


@pytest.mark.parametrize(
    ("current", "lifetime", "trailing", "next_code", "basis_points", "to_go"),
    [
        ("bronze", 0, 0, "silver", 0, 5000),
        ("bronze", 4999, 0, "silver", 4999, 1),
        ("bronze", 7000, 0, "silver", 7000, 0),  # reached: the next evaluation moves it up
        ("silver", 60000, 6000, "gold", 6000, 14000),  # gold counts the trailing window
        ("gold", 10**6, 10**6, None, 0, 0),
    ],
)
def test_progress_to_the_next_tier(
    current: str, lifetime: int, trailing: int, next_code: str | None, basis_points: int, to_go: int
) -> None:
    result = progress(LADDER, current, lifetime=lifetime, trailing=trailing)
    assert (result.next_tier.code if result.next_tier else None) == next_code
    assert (result.basis_points, result.points_to_next) == (basis_points, to_go)


# --- trailing window ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "counts"),
    [
        (timedelta(0), True),
        (timedelta(days=1), True),
        (timedelta(days=364), True),
        (timedelta(days=365) - timedelta(microseconds=1), True),
        (timedelta(days=365), False),  # exactly 12 months before 2026-11-25 (no leap day)
        (timedelta(days=366), False),
        (timedelta(days=800), False),
        (-timedelta(microseconds=1), False),  # posted after as_of
    ],
)
def test_trailing_window_edges(age: timedelta, counts: bool) -> None:
    assert in_trailing_window(T0 - age, T0) is counts


def test_trailing_window_is_calendar_months() -> None:
    assert trailing_window_start(T0) == datetime(2025, 11, 25, 2, 0, tzinfo=UTC)
    leap = datetime(2028, 2, 29, 12, tzinfo=UTC)
    assert trailing_window_start(leap) == datetime(2027, 2, 28, 12, tzinfo=UTC)
    # Across a leap day, 366 days is exactly 12 months: still outside (exclusive start).
    after_leap = datetime(2028, 3, 1, tzinfo=UTC)
    assert not in_trailing_window(after_leap - timedelta(days=366), after_leap)
    assert in_trailing_window(after_leap - timedelta(days=365), after_leap)


def test_trailing_window_needs_an_aware_instant() -> None:
    with pytest.raises(ValueError):
        trailing_window_start(datetime(2026, 1, 1))


# --- upgrades and downgrades -------------------------------------------------------------------


def _decide(current: str, lifetime: int, since: datetime | None, as_of: datetime, grace=GRACE):
    return decide(
        LADDER,
        current=current,
        lifetime=lifetime,
        trailing=0,
        pending_since=since,
        as_of=as_of,
        grace=grace,
    )


def test_upgrade_is_immediate_and_clears_a_pending_downgrade() -> None:
    d = _decide("bronze", 5000, None, T0)
    assert (d.tier, d.direction, d.downgrade_pending_since) == ("silver", "upgrade", None)
    d = _decide("silver", 5000, T0 - timedelta(days=3), T0)
    assert (d.tier, d.direction, d.downgrade_pending_since) == ("silver", None, None)


def test_downgrade_without_grace_is_immediate() -> None:
    d = _decide("gold", 6000, None, T0, grace=timedelta(0))
    assert (d.tier, d.direction) == ("silver", "downgrade")


def test_downgrade_waits_out_the_grace_period() -> None:
    first = _decide("gold", 100, None, T0)
    assert (first.tier, first.direction, first.downgrade_pending_since) == ("gold", None, T0)
    almost = _decide("gold", 100, T0, T0 + GRACE - timedelta(seconds=1))
    assert (almost.tier, almost.downgrade_pending_since) == ("gold", T0)
    due = _decide("gold", 100, T0, T0 + GRACE)
    # To the tier earned now (bronze), not one step down.
    assert (due.tier, due.direction, due.downgrade_pending_since) == ("bronze", "downgrade", None)


def test_an_unknown_current_tier_is_left_alone() -> None:
    d = _decide("platinum", 0, None, T0)
    assert (d.tier, d.direction) == ("platinum", None)


@pytest.mark.parametrize(
    ("tier", "lifetime", "trailing", "upgrade_to", "clear_pending"),
    [
        ("bronze", 4999, 0, None, True),  # the lowest tier is always kept
        ("bronze", 5000, 0, "silver", True),
        ("silver", 5000, 20000, "gold", True),  # trailing points jump a tier
        ("gold", 6000, 20000, None, True),  # re-qualified: a pending downgrade goes
        ("gold", 6000, 0, None, False),  # short: never down at once, the evaluation decides
        ("platinum", 99999, 99999, None, False),  # a tier newer than the ladder
    ],
)
def test_realtime_only_upgrades(
    tier: str, lifetime: int, trailing: int, upgrade_to: str | None, clear_pending: bool
) -> None:
    decision = realtime(LADDER, tier, lifetime=lifetime, trailing=trailing)
    assert (decision.upgrade_to, decision.clear_pending) == (upgrade_to, clear_pending)


def test_realtime_notification_keys_fit_the_outbox() -> None:
    assert realtime_source("earn:booking-1", 7) == "earn:booking-1"
    assert realtime_source(None, 7) == "realtime-7"
    long_key = "k" * 5000
    hashed = realtime_source(long_key, 7)
    assert len(hashed) == 64 and hashed == realtime_source(long_key, 8)  # stable, not the row's
    assert len(notification_key("0" * 36, realtime_source("k" * 100, 7), "x" * 32)) <= 255


@given(
    current=st.sampled_from(["bronze", "silver", "gold"]),
    lifetime=st.integers(min_value=0, max_value=50000),
    trailing=st.integers(min_value=0, max_value=50000),
    grace_days=st.integers(min_value=0, max_value=90),
)
def test_evaluating_twice_at_the_same_instant_changes_nothing_more(
    current: str, lifetime: int, trailing: int, grace_days: int
) -> None:
    grace = timedelta(days=grace_days)
    kwargs = {"lifetime": lifetime, "trailing": trailing, "as_of": T0, "grace": grace}
    first = decide(LADDER, current=current, pending_since=None, **kwargs)  # type: ignore[arg-type]
    again = decide(
        LADDER,
        current=first.tier,
        pending_since=first.downgrade_pending_since,
        **kwargs,  # type: ignore[arg-type]
    )
    assert again.tier == first.tier
    assert again.direction is None
    assert again.downgrade_pending_since == first.downgrade_pending_since


# --- next evaluation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "at", "zone", "expected"),
    [
        (datetime(2026, 11, 25, 1, 59, tzinfo=UTC), "02:00", "UTC", datetime(2026, 11, 25, 2, 0)),
        (datetime(2026, 11, 25, 2, 0, tzinfo=UTC), "02:00", "UTC", datetime(2026, 11, 26, 2, 0)),
        # 02:00 in Ho Chi Minh City (UTC+7) is 19:00 UTC the day before.
        (
            datetime(2026, 11, 25, 18, 0, tzinfo=UTC),
            "02:00",
            "Asia/Ho_Chi_Minh",
            datetime(2026, 11, 25, 19, 0),
        ),
        (
            datetime(2026, 11, 25, 20, 0, tzinfo=UTC),
            "02:00",
            "Asia/Ho_Chi_Minh",
            datetime(2026, 11, 26, 19, 0),
        ),
    ],
)
def test_next_evaluation_time(now: datetime, at: str, zone: str, expected: datetime) -> None:
    assert next_evaluation_at(now, at, zone) == expected.replace(tzinfo=UTC)
