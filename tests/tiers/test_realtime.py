"""The real-time upgrade the earn path calls inside its own transaction (issue 4)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty import ledger
from loyalty.tiers.rules import Ladder, notification_key
from loyalty.tiers.store import apply_realtime_upgrade, pending_downgrade
from tests.tiers.helpers import SeedWallet, seed

MakeWallet = Callable[..., Awaitable[str]]


async def _earn(conn: AsyncConnection, user: str, points: int) -> uuid.UUID:
    result = await ledger.earn(
        conn, user_id=user, points=points, idempotency_key=f"test:{uuid.uuid4()}"
    )
    return result.wallet.wallet_id


async def _history(engine: AsyncEngine, wallet_id: uuid.UUID) -> list[tuple[str, ...]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT from_tier, to_tier, direction, reason FROM tier_history "
                "WHERE wallet_id = :w ORDER BY history_id"
            ),
            {"w": wallet_id},
        )
        return [tuple(r) for r in rows]


async def test_an_earn_that_crosses_a_threshold_upgrades_at_once(
    engine: AsyncEngine, ladder: Ladder, make_wallet: MakeWallet
) -> None:
    user = await make_wallet(4999)
    async with engine.begin() as conn:
        wallet_id = await _earn(conn, user, 1)
        change = await apply_realtime_upgrade(conn, wallet_id, source="earn:booking-1")
        assert change is not None
        assert (change.from_tier, change.to_tier) == ("bronze", "silver")
        assert change.notification.idempotency_key == notification_key(
            wallet_id, "earn:booking-1", "silver"
        )
        assert await apply_realtime_upgrade(conn, wallet_id) is None  # already there
    async with engine.connect() as conn:
        tier = (await ledger.get_wallet(conn, user)).tier
        outbox = (
            await conn.execute(
                text("SELECT kind, payload FROM notification_outbox WHERE idempotency_key = :k"),
                {"k": change.notification.idempotency_key},
            )
        ).one()
    assert tier == "silver"
    assert await _history(engine, wallet_id) == [("bronze", "silver", "upgrade", "realtime")]
    assert outbox[0] == "tier_changed" and outbox[1]["to_tier"] == "silver"


async def test_trailing_points_can_jump_tiers(
    engine: AsyncEngine, ladder: Ladder, make_wallet: MakeWallet
) -> None:
    user = await make_wallet(0)
    async with engine.begin() as conn:
        wallet_id = await _earn(conn, user, 20000)
        change = await apply_realtime_upgrade(conn, wallet_id)
    assert change is not None and (change.from_tier, change.to_tier) == ("bronze", "gold")


async def test_never_downgrades_but_clears_a_pending_downgrade_once_requalified(
    engine: AsyncEngine, owner_engine: AsyncEngine, ladder: Ladder
) -> None:
    short = SeedWallet("gold", [(6000, datetime.now(UTC) - timedelta(days=400))])
    short.pending_since = datetime.now(UTC) - timedelta(days=3)
    ids = await seed(owner_engine, [short])
    wallet_id = ids[short.user_id]
    async with engine.begin() as conn:
        assert await apply_realtime_upgrade(conn, wallet_id) is None
        assert (await ledger.get_wallet(conn, short.user_id)).tier == "gold"
        assert await pending_downgrade(conn, wallet_id) is not None  # still short of gold

        await _earn(conn, short.user_id, 20000)
        assert await apply_realtime_upgrade(conn, wallet_id) is None
        assert await pending_downgrade(conn, wallet_id) is None
    assert await _history(engine, wallet_id) == []


async def test_nothing_stays_when_the_callers_transaction_rolls_back(
    engine: AsyncEngine, ladder: Ladder, make_wallet: MakeWallet
) -> None:
    user = await make_wallet(4999)
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            wallet_id = await _earn(conn, user, 1)
            assert await apply_realtime_upgrade(conn, wallet_id) is not None
            raise RuntimeError("the earn failed later")
    async with engine.connect() as conn:
        assert (await ledger.get_wallet(conn, user)).tier == "bronze"
    assert await _history(engine, wallet_id) == []
