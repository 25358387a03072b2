"""What the ledger says about a booking's checkouts (read on the caller's connection).

A booking's checkout may run again after one that ended without a capture; this is the check
that keeps a booking whose points were spent from being charged points twice."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_CAPTURED = text(
    "SELECT EXISTS (SELECT 1 FROM wallet_transactions WHERE booking_id = :b "
    "AND type = 'capture' AND counter_account = 'redemption')"
)


async def points_captured(conn: AsyncConnection, booking_id: str) -> bool:
    """Whether a checkout of this booking has captured points (index on booking_id)."""
    return bool((await conn.execute(_CAPTURED, {"b": booking_id})).scalar_one())
