"""Point lots: what is left of each credit, and when it expires (migration 0012 holds the rules:
credits open lots, debits draw from the lots that expire first, refunds and releases give points
back to the lots they came from). This module reads them; only the posting functions write them.

Invariant: a wallet's lots hold exactly its available points (loyalty.ledger.invariants)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True)
class Lot:
    lot_id: int
    wallet_id: uuid.UUID
    opened_by_tx_id: int | None  # None: opened by migration 0012 for the points it found
    points: int
    remaining: int
    expires_at: datetime | None  # None: never
    expired_tx_id: int | None
    closed_at: datetime | None  # due and visited by the expiry (with or without a posting)
    created_at: datetime


@dataclass(frozen=True)
class Expiring:
    """The points of a wallet's next expiry: those of every lot due on the same (UTC) day."""

    points: int
    expires_at: datetime  # the first of them


_COLUMNS = (
    "lot_id, wallet_id, opened_by_tx_id, points, remaining, expires_at, expired_tx_id, "
    "closed_at, created_at"
)
_LOTS = text(f"SELECT {_COLUMNS} FROM point_lots WHERE wallet_id = :w ORDER BY lot_id")
# The wallet's lots that still hold points, by due date (the draw index serves it).
_NEXT_EXPIRING = text("""
    WITH first AS (
        SELECT expires_at FROM point_lots
        WHERE wallet_id = :w AND closed_at IS NULL AND remaining > 0 AND expires_at IS NOT NULL
        ORDER BY expires_at LIMIT 1
    )
    SELECT SUM(l.remaining) AS points, MIN(l.expires_at) AS expires_at
    FROM point_lots l, first f
    WHERE l.wallet_id = :w AND l.closed_at IS NULL AND l.remaining > 0
      AND l.expires_at >= f.expires_at
      AND l.expires_at < date_trunc('day', f.expires_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                         + interval '1 day'""")
_DUE = text(f"""
    SELECT {_COLUMNS} FROM point_lots
    WHERE closed_at IS NULL AND expires_at IS NOT NULL AND expires_at <= :as_of
      AND (expires_at, lot_id) > (CAST(:after_at AS timestamptz), CAST(:after_id AS bigint))
    ORDER BY expires_at, lot_id LIMIT :limit""")
_EPOCH = datetime.fromisoformat("0001-01-01T00:00:00+00:00")


async def lots_of(conn: AsyncConnection, wallet_id: uuid.UUID) -> list[Lot]:
    rows = (await conn.execute(_LOTS, {"w": wallet_id})).mappings()
    return [Lot(**row) for row in rows]


async def next_expiring(conn: AsyncConnection, wallet_id: uuid.UUID) -> Expiring | None:
    row = (await conn.execute(_NEXT_EXPIRING, {"w": wallet_id})).mappings().one()
    if row["points"] is None:
        return None
    return Expiring(points=int(row["points"]), expires_at=row["expires_at"])


async def due_lots(
    conn: AsyncConnection,
    *,
    as_of: datetime,
    after: tuple[datetime, int] | None = None,
    limit: int = 1000,
) -> Sequence[Lot]:
    """Lots due at `as_of` not closed yet (some hold nothing: expire_lot closes them), in
    (expires_at, lot_id) order after the keyset `after` (the last lot of the previous page)."""
    after_at, after_id = after if after is not None else (_EPOCH, 0)
    rows = await conn.execute(
        _DUE, {"as_of": as_of, "after_at": after_at, "after_id": after_id, "limit": limit}
    )
    return [Lot(**row) for row in rows.mappings()]
