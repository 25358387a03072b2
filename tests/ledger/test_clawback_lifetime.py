"""A clawback takes back the tier credit of the points it takes (migration 0015): lifetime points
drop by what it takes, or by `lifetime_points` when a refund's debt or a repayment says
otherwise, once per key and never below zero.

Where a test passes `lifetime_points`, it records the debt entries a refund or a repayment would
(loyalty.earning.debt), so lifetime points stay the points kept the ledger invariants check."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from loyalty import ledger
from loyalty.core.errors import ValidationFailed
from loyalty.earning import debt
from loyalty.ledger.invariants import find_violations

MakeWallet = Callable[..., Awaitable[str]]


async def _lifetime(engine: AsyncEngine, user: str) -> tuple[int, int]:
    async with engine.connect() as conn:
        wallet = await ledger.get_wallet(conn, user)
    return wallet.balance, wallet.lifetime_points


async def test_a_clawback_lowers_lifetime_by_what_it_takes_once(
    engine: AsyncEngine, make_wallet: MakeWallet
) -> None:
    user = await make_wallet(1_000)
    for attempt in range(2):
        async with engine.begin() as conn:
            result = await ledger.clawback(
                conn, user_id=user, points=300, idempotency_key=f"{user}:cb"
            )
        assert result.replayed == (attempt == 1)
        assert (result.wallet.balance, result.wallet.lifetime_points) == (700, 700)
    assert result.posting.metadata["lifetime_points_taken"] == 300


async def test_a_refund_short_of_points_takes_the_owed_tier_credit_too(
    engine: AsyncEngine, make_wallet: MakeWallet
) -> None:
    """100 points available of 400 due: 100 taken, 300 owed, 400 off lifetime; the repayment
    later takes points but no tier credit (lifetime_points=0)."""
    user = await make_wallet(1_000, spent=900)
    async with engine.begin() as conn:
        taken = await ledger.clawback(
            conn, user_id=user, points=100, lifetime_points=400, idempotency_key=f"{user}:cb"
        )
        await debt.record_entry(
            conn, user_id=user, points=300, key=f"{user}:debt", booking_id=None, tx_id=None
        )
    assert (taken.wallet.balance, taken.wallet.lifetime_points) == (0, 600)
    assert taken.posting.metadata["lifetime_points_taken"] == 400

    async with engine.begin() as conn:
        earned = await ledger.earn(conn, user_id=user, points=500, idempotency_key=f"{user}:e")
        repaid = await debt.repay(conn, user, earned.posting, 300)
    assert (repaid.wallet.balance, repaid.wallet.lifetime_points) == (200, 1_100)
    assert repaid.posting.metadata["lifetime_points_taken"] == 0


async def test_a_clawback_of_zero_points_only_takes_tier_credit(
    engine: AsyncEngine, make_wallet: MakeWallet
) -> None:
    user = await make_wallet(1_000, spent=1_000)
    async with engine.begin() as conn:
        result = await ledger.clawback(
            conn, user_id=user, points=0, lifetime_points=250, idempotency_key=f"{user}:cb"
        )
        await debt.record_entry(
            conn, user_id=user, points=250, key=f"{user}:debt", booking_id=None, tx_id=None
        )
    assert (result.posting.amount, result.wallet.balance, result.wallet.lifetime_points) == (
        0,
        0,
        750,
    )


@pytest.mark.parametrize(
    ("points", "lifetime_points", "message"),
    [
        (0, None, "points must be positive"),
        (0, 0, "points must be positive"),
        (-5, 10, "points must be positive"),
        (10, -1, "lifetime points must not be negative"),
    ],
)
async def test_bad_clawbacks_are_refused(
    engine: AsyncEngine,
    make_wallet: MakeWallet,
    points: int,
    lifetime_points: int | None,
    message: str,
) -> None:
    user = await make_wallet(100)
    with pytest.raises(ValidationFailed, match=message):
        async with engine.begin() as conn:
            await ledger.clawback(
                conn,
                user_id=user,
                points=points,
                lifetime_points=lifetime_points,
                idempotency_key=f"{user}:cb",
            )
    assert await _lifetime(engine, user) == (100, 100)


async def test_lifetime_points_never_go_below_zero(
    engine: AsyncEngine, make_wallet: MakeWallet
) -> None:
    """Points credited by an adjustment are in the balance but were never earned."""
    user = await make_wallet(100)
    async with engine.begin() as conn:
        await ledger.adjust(
            conn, user_id=user, points=1_000, reason="goodwill", idempotency_key=f"{user}:adj"
        )
        result = await ledger.clawback(conn, user_id=user, points=500, idempotency_key=f"{user}:c")
    assert (result.wallet.balance, result.wallet.lifetime_points) == (600, 0)
    assert result.posting.metadata["lifetime_points_taken"] == 100


async def test_the_invariant_finds_lifetime_points_that_kept_a_clawback(
    engine: AsyncEngine, owner_engine: AsyncEngine, make_wallet: MakeWallet
) -> None:
    """Lifetime points counted the old way (every point earned) are a violation."""
    user = await make_wallet(1_000)
    async with engine.begin() as conn:
        await ledger.clawback(conn, user_id=user, points=300, idempotency_key=f"{user}:cb")
    # Only the owner may write a wallet directly.
    corrupt = "UPDATE wallets SET lifetime_points = lifetime_points + :d WHERE user_id = :u"
    async with owner_engine.begin() as conn:
        await conn.execute(text(corrupt), {"d": 300, "u": user})
    try:
        async with engine.connect() as conn:
            found = [v for v in await find_violations(conn) if v.subject == user]
    finally:
        async with owner_engine.begin() as conn:
            await conn.execute(text(corrupt), {"d": -300, "u": user})
    assert [(v.check, v.actual, v.expected) for v in found] == [
        ("lifetime points equal the points kept", 1_000, 700)
    ]
