"""Two-phase spending: a hold reserves points for a checkout, then exactly one of capture (the
points are spent) or release (they are available again) resolves it. Each is one call of its
PostgreSQL function (migration 0007): the hold row is locked and checked open, and a partial
unique index allows one resolving row per hold, so racing capture, release and expiry cannot
both win. A hold id names one hold: placing it again with its own key and request replays it,
anything else is refused."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.core.errors import NotFound
from loyalty.core.hashing import request_hash
from loyalty.ledger.calls import call, check_points, hold_of, posting_result
from loyalty.ledger.types import HoldState, PostingResult


def hold_id_for(idempotency_key: str) -> uuid.UUID:
    """The hold id a caller that names none gets: stable per key, so a retry finds it."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"loyalty-hold:{idempotency_key}")


async def hold(
    conn: AsyncConnection,
    *,
    user_id: str,
    points: int,
    idempotency_key: str,
    expires_at: datetime,
    booking_id: str | None = None,
    hold_id: uuid.UUID | None = None,
    description: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> tuple[HoldState, PostingResult]:
    """Reserve points: they stay in the balance but are no longer available."""
    check_points(points)
    request = {"type": "hold", "user_id": user_id, "points": points, "booking_id": booking_id}
    row = await call(
        conn,
        "ledger_hold",
        user_id=user_id,
        points=points,
        idempotency_key=idempotency_key,
        request_hash=request_hash(request),
        hold_id=hold_id or hold_id_for(idempotency_key),
        expires_at=expires_at,
        booking_id=booking_id,
        description=description,
        metadata=metadata,
    )
    return hold_of(row), posting_result(row)


async def capture(
    conn: AsyncConnection,
    *,
    hold_id: uuid.UUID,
    idempotency_key: str,
    currency_amount: int | None = None,
    currency: str | None = None,
    description: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> PostingResult:
    """Post the held points as spent (a burn against the redemption account)."""
    row = await call(
        conn,
        "ledger_capture",
        hold_id=hold_id,
        idempotency_key=idempotency_key,
        request_hash=request_hash({"type": "capture", "hold_id": str(hold_id)}),
        currency_amount=currency_amount,
        currency=currency,
        description=description,
        metadata=metadata,
    )
    return posting_result(row)


async def release(
    conn: AsyncConnection,
    *,
    hold_id: uuid.UUID,
    idempotency_key: str,
    description: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> PostingResult:
    """Void the hold: the points become available again."""
    row = await call(
        conn,
        "ledger_release",
        hold_id=hold_id,
        idempotency_key=idempotency_key,
        request_hash=request_hash({"type": "release", "hold_id": str(hold_id)}),
        description=description,
        metadata=metadata,
    )
    return posting_result(row)


_HOLD = text(
    "SELECT hold_id, wallet_id, amount, booking_id, status, expires_at, created_at, resolved_at "
    "FROM holds WHERE hold_id = :h"
)


async def get_hold(conn: AsyncConnection, hold_id: uuid.UUID) -> HoldState:
    row = (await conn.execute(_HOLD, {"h": hold_id})).mappings().first()
    if row is None:
        raise NotFound(f"no hold {hold_id}", hold_id=str(hold_id))
    return HoldState(**row)
