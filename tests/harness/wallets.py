"""Wallets with a history in one line, through the ledger's own postings:

    user = await make_wallet(1000)                        # 1,000 earned points
    user = await make_wallet(5000, spent=1200, held=300)  # earned, then a burn and an open hold
    user = await make_wallet(0)                           # an empty wallet
    user = await make_wallet(25_000, tier="gold")         # earned, and moved to a tier

Seed postings carry `test-seed:` keys, so a test can leave them out of what it counts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty import ledger
from loyalty.core import db

SEED = "test-seed:"


def new_user() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


async def make_wallet(
    engine: AsyncEngine,
    points: int = 1000,
    *,
    spent: int = 0,
    held: int = 0,
    tier: str | None = None,
    user_id: str | None = None,
) -> str:
    user = user_id or new_user()
    key = f"{SEED}{user}:{uuid.uuid4()}"
    async with db.transaction(engine) as conn:
        if points:
            await ledger.earn(
                conn, user_id=user, points=points, idempotency_key=key, description="test seed"
            )
        else:
            await ledger.open_wallet(conn, user)
        if spent:
            await ledger.burn(
                conn,
                user_id=user,
                points=spent,
                idempotency_key=f"{key}:burn",
                counter_account="test",
                description="test seed",
            )
        if held:
            await ledger.hold(
                conn,
                user_id=user,
                points=held,
                idempotency_key=f"{key}:hold",
                expires_at=datetime.now(UTC) + timedelta(hours=1),
                booking_id=f"seed-{uuid.uuid4().hex[:8]}",
                description="test seed",
            )
        if tier is not None:
            await conn.execute(
                text("UPDATE wallets SET tier = :t WHERE user_id = :u"), {"t": tier, "u": user}
            )
    return user


# Backdated earn rows that a test writes as the owner (the posting functions date rows now) need
# the lots an earn opens, or the invariant "available equals the points left in lots" breaks.
_OPEN_LOTS = text(
    "INSERT INTO point_lots (wallet_id, opened_by_tx_id, points, remaining, expires_at, "
    "created_at) SELECT wallet_id, tx_id, amount, amount, created_at + interval '24 months', "
    "created_at FROM wallet_transactions WHERE idempotency_key = ANY(CAST(:keys AS text[]))"
)


async def open_lots_of_seeded_earns(conn: AsyncConnection, keys: list[str]) -> None:
    """Open the lot of each earn row written under `keys` (as the owner, on `conn`)."""
    await conn.execute(_OPEN_LOTS, {"keys": keys})
