"""The ledger module against real PostgreSQL: append-only, idempotent, two-phase holds."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from loyalty import ledger
from loyalty.core.errors import (
    HoldNotOpen,
    IdempotencyConflict,
    InsufficientPoints,
    RefundExceedsSpending,
    ValidationFailed,
    WalletNotFound,
)


def _later(minutes: int = 15) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE wallet_transactions SET amount = amount + 1 WHERE wallet_id = :w",
        "DELETE FROM wallet_transactions WHERE wallet_id = :w",
        "TRUNCATE wallet_transactions CASCADE",
    ],
)
async def test_triggers_reject_changes_to_posted_rows(engine, owner_engine, make_wallet, statement):
    """Even the owner, whom no privilege stops (the service's role has none of these:
    tests/ledger/test_roles.py)."""
    user = await make_wallet(500)
    async with owner_engine.connect() as conn:
        wallet = await ledger.get_wallet(conn, user)
        with pytest.raises(DBAPIError, match="append-only"):
            await conn.execute(text(statement), {"w": wallet.wallet_id})
        await conn.rollback()
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT count(*), sum(amount) FROM wallet_transactions WHERE wallet_id = :w"),
                {"w": wallet.wallet_id},
            )
        ).one()
    assert tuple(rows) == (1, 500)


async def test_earn_twice_with_same_key_posts_once(engine, user_id):
    for attempt in range(2):
        async with engine.begin() as conn:
            result = await ledger.earn(
                conn,
                user_id=user_id,
                points=120,
                idempotency_key=f"earn:{user_id}:b1",
                booking_id="b1",
            )
        assert result.replayed is (attempt == 1)
        assert result.wallet.balance == 120
    async with engine.connect() as conn:
        count = (
            await conn.execute(
                text("SELECT count(*) FROM wallet_transactions WHERE idempotency_key = :k"),
                {"k": f"earn:{user_id}:b1"},
            )
        ).scalar_one()
    assert count == 1


async def test_same_key_other_amount_is_a_conflict(engine, user_id):
    async with engine.begin() as conn:
        await ledger.earn(conn, user_id=user_id, points=120, idempotency_key=f"k:{user_id}")
    with pytest.raises(IdempotencyConflict):
        async with engine.begin() as conn:
            await ledger.earn(conn, user_id=user_id, points=121, idempotency_key=f"k:{user_id}")
    async with engine.connect() as conn:
        assert (await ledger.get_wallet(conn, user_id)).balance == 120


async def test_concurrent_same_key_earns_post_once(engine, user_id):
    async def one() -> ledger.PostingResult:
        async with engine.begin() as conn:
            return await ledger.earn(
                conn, user_id=user_id, points=75, idempotency_key=f"race:{user_id}"
            )

    results = await asyncio.gather(*(one() for _ in range(10)))
    assert sum(not r.replayed for r in results) == 1
    async with engine.connect() as conn:
        assert (await ledger.get_wallet(conn, user_id)).balance == 75


async def test_fifty_concurrent_holds_never_overdraw(engine, make_wallet):
    user = await make_wallet(1000)

    async def one(i: int) -> bool:
        try:
            async with engine.begin() as conn:
                await ledger.hold(
                    conn,
                    user_id=user,
                    points=100,
                    expires_at=_later(),
                    idempotency_key=f"hold:{user}:{i}",
                    booking_id=f"b{i}",
                )
            return True
        except InsufficientPoints:
            return False

    outcomes = await asyncio.gather(*(one(i) for i in range(50)))
    assert sum(outcomes) == 10
    async with engine.connect() as conn:
        wallet = await ledger.get_wallet(conn, user)
    assert (wallet.balance, wallet.held, wallet.available) == (1000, 1000, 0)


async def test_hold_capture_and_release_are_exclusive(engine, make_wallet):
    user = await make_wallet(1000)
    async with engine.begin() as conn:
        held, _ = await ledger.hold(
            conn,
            user_id=user,
            points=300,
            expires_at=_later(),
            idempotency_key=f"h:{user}",
            booking_id="b1",
        )

    async def resolve(kind: str, n: int) -> str:
        try:
            async with engine.begin() as conn:
                if kind == "capture":
                    await ledger.capture(
                        conn, hold_id=held.hold_id, idempotency_key=f"capture:{held.hold_id}:{n}"
                    )
                else:
                    await ledger.release(
                        conn, hold_id=held.hold_id, idempotency_key=f"release:{held.hold_id}:{n}"
                    )
            return kind
        except HoldNotOpen:
            return "refused"

    outcomes = await asyncio.gather(
        *(resolve(k, n) for n in range(5) for k in ("capture", "release"))
    )
    winners = [o for o in outcomes if o != "refused"]
    assert len(winners) == 1
    async with engine.connect() as conn:
        wallet = await ledger.get_wallet(conn, user)
        final = await ledger.get_hold(conn, held.hold_id)
    assert wallet.held == 0
    assert wallet.balance == (700 if winners[0] == "capture" else 1000)
    assert final.status == ("captured" if winners[0] == "capture" else "released")


async def test_capture_replay_returns_the_original(engine, make_wallet):
    user = await make_wallet(1000)
    async with engine.begin() as conn:
        held, _ = await ledger.hold(
            conn, user_id=user, points=250, expires_at=_later(), idempotency_key=f"h:{user}"
        )
    first = second = None
    for _ in range(2):
        async with engine.begin() as conn:
            result = await ledger.capture(
                conn,
                hold_id=held.hold_id,
                currency_amount=250,
                currency="VND",
                idempotency_key=f"c:{held.hold_id}",
            )
        first, second = (result, None) if first is None else (first, result)
    assert first is not None and second is not None
    assert not first.replayed and second.replayed
    assert first.posting.tx_id == second.posting.tx_id
    assert second.wallet.balance == 750
    with pytest.raises(HoldNotOpen):
        async with engine.begin() as conn:
            await ledger.release(conn, hold_id=held.hold_id, idempotency_key=f"r:{held.hold_id}")


async def test_adjustment_cannot_take_available_below_zero(engine, make_wallet):
    user = await make_wallet(100)
    async with engine.begin() as conn:
        await ledger.hold(
            conn, user_id=user, points=60, expires_at=_later(), idempotency_key=f"h:{user}"
        )
    with pytest.raises(InsufficientPoints):
        async with engine.begin() as conn:
            await ledger.adjust(
                conn,
                user_id=user,
                points=-41,
                reason="goodwill reversal",
                idempotency_key=f"adj:{user}",
            )
    async with engine.begin() as conn:
        result = await ledger.adjust(
            conn,
            user_id=user,
            points=-40,
            reason="goodwill reversal",
            idempotency_key=f"adj:{user}",
        )
    assert (result.wallet.balance, result.wallet.held, result.wallet.available) == (60, 60, 0)


@pytest.mark.parametrize("points", [0, -5, 1.5, True, 10**13])
async def test_bad_points_are_rejected_before_any_write(engine, user_id, points):
    with pytest.raises(ValidationFailed):
        async with engine.begin() as conn:
            await ledger.earn(conn, user_id=user_id, points=points, idempotency_key=user_id)
    async with engine.connect() as conn:
        assert await ledger.find_wallet(conn, user_id) is None


async def test_unknown_wallet(engine):
    async with engine.connect() as conn:
        with pytest.raises(WalletNotFound):
            await ledger.adjust(
                conn,
                user_id=f"nobody-{uuid.uuid4()}",
                points=5,
                reason="x",
                idempotency_key=str(uuid.uuid4()),
            )


async def test_burn_spends_at_once_and_refuses_overdraw(engine, make_wallet):
    user = await make_wallet(300)
    async with engine.begin() as conn:
        result = await ledger.burn(
            conn,
            user_id=user,
            points=200,
            counter_account="voucher_sales",
            idempotency_key=f"burn:{user}",
        )
    assert (result.posting.type, result.posting.amount, result.wallet.balance) == (
        "burn",
        -200,
        100,
    )
    with pytest.raises(InsufficientPoints):
        async with engine.begin() as conn:
            await ledger.burn(
                conn,
                user_id=user,
                points=101,
                counter_account="voucher_sales",
                idempotency_key=f"burn2:{user}",
            )


async def test_refunds_never_exceed_what_was_spent(engine, make_wallet):
    user = await make_wallet(1000)
    async with engine.begin() as conn:
        held, _ = await ledger.hold(
            conn,
            user_id=user,
            points=400,
            expires_at=_later(),
            idempotency_key=f"h:{user}",
            booking_id="b9",
        )
        captured = await ledger.capture(conn, hold_id=held.hold_id, idempotency_key=f"c:{user}")
    spent_tx = captured.posting.tx_id

    async def refund(points: int, key: str) -> ledger.PostingResult:
        async with engine.begin() as conn:
            return await ledger.refund(
                conn, reverses_tx_id=spent_tx, points=points, idempotency_key=key
            )

    first = await refund(150, f"r1:{user}")
    again = await refund(150, f"r1:{user}")
    assert not first.replayed and again.replayed and again.posting.tx_id == first.posting.tx_id
    assert first.posting.booking_id == "b9" and first.posting.reverses_tx_id == spent_tx
    outcomes = await asyncio.gather(
        *(refund(100, f"r-race-{i}:{user}") for i in range(5)), return_exceptions=True
    )
    assert sum(isinstance(o, ledger.PostingResult) for o in outcomes) == 2
    assert all(isinstance(o, (ledger.PostingResult, RefundExceedsSpending)) for o in outcomes)
    async with engine.connect() as conn:
        wallet = await ledger.get_wallet(conn, user)
    assert wallet.balance == 1000 - 400 + 150 + 200
