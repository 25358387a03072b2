"""Reading the lots, the expire postings and the reminders back for the expiry tests."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import WorkflowHandle

from loyalty import ledger
from loyalty.core import db
from loyalty.expiry.contracts import ExpiryResult

# The `expire` fixture (tests/expiry/conftest.py): one expiry run to its end.
Expire = Callable[..., Awaitable[tuple[ExpiryResult, WorkflowHandle[Any, Any]]]]


@dataclass(frozen=True)
class LotRow:
    wallet_id: uuid.UUID
    remaining: int
    expires_at: datetime | None
    expired_tx_id: int | None
    closed_at: datetime | None = None


async def lots(engine: AsyncEngine) -> dict[int, LotRow]:
    """Every lot of the database (the run walks them all, not only a test's)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT lot_id, wallet_id, remaining, expires_at, expired_tx_id, closed_at "
                "FROM point_lots"
            )
        )
        return {
            r.lot_id: LotRow(r.wallet_id, r.remaining, r.expires_at, r.expired_tx_id, r.closed_at)
            for r in rows
        }


def due(before: dict[int, LotRow], as_of: datetime) -> dict[int, LotRow]:
    """The lots holding points that are due at `as_of`."""
    return {
        lot_id: lot
        for lot_id, lot in before.items()
        if lot.remaining > 0 and lot.expires_at is not None and lot.expires_at <= as_of
    }


def visited(before: dict[int, LotRow], as_of: datetime) -> dict[int, LotRow]:
    """The lots a run at `as_of` pages through: due and not closed, spent ones included (the
    run closes them without a posting)."""
    return {
        lot_id: lot
        for lot_id, lot in before.items()
        if lot.closed_at is None and lot.expires_at is not None and lot.expires_at <= as_of
    }


async def expire_postings(engine: AsyncEngine, after_tx: int) -> dict[int, tuple[int, str, str]]:
    """Lot id -> (amount, counter account, key) of every expire posting after `after_tx`."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT CAST(metadata ->> 'lot_id' AS bigint), amount, counter_account, "
                "idempotency_key FROM wallet_transactions WHERE type = 'expire' AND tx_id > :t"
            ),
            {"t": after_tx},
        )
        found: dict[int, tuple[int, str, str]] = {}
        for lot_id, amount, account, key in rows:
            assert lot_id not in found, f"lot {lot_id} expired twice"
            found[lot_id] = (amount, account, key)
        return found


async def earn(engine: AsyncEngine, user: str, points: int, months: int) -> int:
    """An earn opening a lot of `months` validity; its lot id."""
    async with db.transaction(engine) as conn:
        posted = await ledger.earn(
            conn,
            user_id=user,
            points=points,
            idempotency_key=f"test-seed:{user}:{uuid.uuid4().hex[:8]}",
            validity_months=months,
        )
        lot = await conn.execute(
            text("SELECT lot_id FROM point_lots WHERE opened_by_tx_id = :t"),
            {"t": posted.posting.tx_id},
        )
        return int(lot.scalar_one())


async def burn(engine: AsyncEngine, user: str, points: int) -> None:
    async with db.transaction(engine) as conn:
        await ledger.burn(
            conn,
            user_id=user,
            points=points,
            idempotency_key=f"test-seed:{user}:burn:{uuid.uuid4().hex[:8]}",
            counter_account="test",
        )


async def wallet(engine: AsyncEngine, user: str) -> ledger.WalletState:
    async with engine.connect() as conn:
        return await ledger.get_wallet(conn, user)


async def reminders_of(engine: AsyncEngine, user: str) -> list[tuple[str, dict[str, Any]]]:
    """(key, payload) of the customer's points_expiring notifications, oldest first."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT idempotency_key, payload FROM notification_outbox "
                "WHERE user_id = :u AND kind = 'points_expiring' ORDER BY notification_id"
            ),
            {"u": user},
        )
        return [(key, payload) for key, payload in rows]
