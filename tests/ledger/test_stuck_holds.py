"""The stuck-hold invariant: a hold still open more than the grace after its expiry is reported
by find_violations, as of the database's clock or a given `now`; a resolved hold never is, and
without a grace the check is left out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from loyalty import ledger
from loyalty.core import db
from loyalty.ledger.invariants import STUCK_HOLDS, Violation, check_names, find_violations
from tests.ledger.stuck import stuck_hold

GRACE = timedelta(minutes=5)
SECOND = timedelta(seconds=1)


async def _stuck(
    engine: AsyncEngine,
    hold_id: str,
    *,
    hold_grace: timedelta | None = None,
    now: datetime | None = None,
) -> list[Violation]:
    """The violations naming this hold (the database also holds other tests' holds)."""
    async with engine.connect() as conn:
        violations = await find_violations(conn, hold_grace=hold_grace, now=now)
    return [v for v in violations if v.subject == hold_id]


async def test_a_hold_past_its_expiry_and_the_grace_is_stuck(
    engine: AsyncEngine, make_wallet: Callable[..., Awaitable[str]]
) -> None:
    user = await make_wallet(1000)
    async with stuck_hold(engine, user, expired_ago=timedelta(hours=1), points=250) as held:
        hold_id, expiry = str(held.hold_id), held.expires_at

        # Exactly at the edge, by the given clock.
        assert await _stuck(engine, hold_id, hold_grace=GRACE, now=expiry + GRACE) == []
        (violation,) = await _stuck(engine, hold_id, hold_grace=GRACE, now=expiry + GRACE + SECOND)
        stamp = expiry.isoformat(timespec="seconds")
        deadline = (expiry + GRACE).isoformat(timespec="seconds")
        assert violation == Violation(
            STUCK_HOLDS,
            hold_id,
            f"open: 250 points of {user} for booking {held.booking_id}, expired {stamp}",
            f"captured or released by {deadline}",
        )
        # By the database's clock: an hour past expiry is past a 5-minute grace, not a 2-hour one.
        assert [v.check for v in await _stuck(engine, hold_id, hold_grace=GRACE)] == [STUCK_HOLDS]
        assert await _stuck(engine, hold_id, hold_grace=timedelta(hours=2)) == []
        # Without a grace the check is not run at all.
        assert await _stuck(engine, hold_id) == []

    far_future = expiry + timedelta(days=3650)
    assert await _stuck(engine, hold_id, hold_grace=timedelta(0), now=far_future) == []


async def test_a_hold_resolved_in_time_is_never_stuck(
    engine: AsyncEngine, make_wallet: Callable[..., Awaitable[str]]
) -> None:
    user = await make_wallet(1000)
    async with stuck_hold(engine, user, expired_ago=timedelta(seconds=0)) as held:
        async with db.transaction(engine) as conn:
            await ledger.capture(conn, hold_id=held.hold_id, idempotency_key=f"c:{held.hold_id}")
        far_future = held.expires_at + timedelta(days=3650)
        assert await _stuck(engine, str(held.hold_id), hold_grace=GRACE, now=far_future) == []


def test_the_stuck_hold_check_is_named_only_when_it_runs() -> None:
    assert STUCK_HOLDS not in check_names(stuck_holds=False)
    assert check_names(stuck_holds=True)[-1] == STUCK_HOLDS
