"""A hold id names one hold. Placing it again is a replay only with its own key and request;
anything else is refused and moves nothing (held always equals the open holds)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from loyalty import ledger
from loyalty.core.errors import IdempotencyConflict


async def _held(engine, user: str) -> tuple[int, int]:
    """(wallets.held, the sum of the wallet's open holds)."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT w.held, COALESCE((SELECT SUM(amount) FROM holds h "
                    "WHERE h.wallet_id = w.wallet_id AND h.status = 'open'), 0) "
                    "FROM wallets w WHERE w.user_id = :u"
                ),
                {"u": user},
            )
        ).one()
    return int(row[0]), int(row[1])


async def _hold(engine, user: str, points: int, key: str, hold_id: uuid.UUID):
    async with engine.begin() as conn:
        return await ledger.hold(
            conn,
            user_id=user,
            points=points,
            idempotency_key=key,
            expires_at=datetime.now(UTC) + timedelta(minutes=15),
            booking_id="bk-hold-id",
            hold_id=hold_id,
        )


@pytest.mark.parametrize("points", [100, 300])
async def test_a_second_hold_with_the_same_hold_id_and_another_key_is_refused(
    engine, make_wallet, points
):
    user = await make_wallet(1000)
    hold_id = uuid.uuid4()
    await _hold(engine, user, 100, f"hold-a:{hold_id}", hold_id)

    with pytest.raises(IdempotencyConflict):
        await _hold(engine, user, points, f"hold-b:{hold_id}", hold_id)

    assert await _held(engine, user) == (100, 100)


async def test_the_same_hold_again_is_a_replay(engine, make_wallet):
    user = await make_wallet(1000)
    hold_id = uuid.uuid4()
    first, _ = await _hold(engine, user, 100, f"hold:{hold_id}", hold_id)
    again, replay = await _hold(engine, user, 100, f"hold:{hold_id}", hold_id)
    assert replay.replayed and again == first
    with pytest.raises(IdempotencyConflict):  # its key, another request
        await _hold(engine, user, 101, f"hold:{hold_id}", hold_id)
    assert await _held(engine, user) == (100, 100)
