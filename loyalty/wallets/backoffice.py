"""Reads for the backoffice: a wallet's tier history, and points issued, redeemed and expired
per day across all wallets (the dashboard's charts)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True)
class TierChange:
    from_tier: str
    to_tier: str
    direction: str
    reason: str
    as_of: datetime


@dataclass(frozen=True)
class PointsDay:
    day: date
    issued: int
    redeemed: int
    expired: int


async def tier_history(conn: AsyncConnection, user_id: str, limit: int = 50) -> list[TierChange]:
    rows = await conn.execute(
        text(
            "SELECT h.from_tier, h.to_tier, h.direction, h.reason, h.as_of "
            "FROM tier_history h JOIN wallets w USING (wallet_id) "
            "WHERE w.user_id = :u ORDER BY h.history_id DESC LIMIT :limit"
        ),
        {"u": user_id, "limit": limit},
    )
    return [TierChange(**r) for r in rows.mappings()]


# Issued: points credited by earns (campaign lines included) and credit adjustments; redeemed:
# points paid at checkout (captures) and spent on vouchers (burns); expired: expiries. Days are
# UTC days.
_PER_DAY = """
SELECT (created_at AT TIME ZONE 'UTC')::date AS day,
       COALESCE(sum(amount) FILTER (WHERE type = 'earn' OR (type = 'adjustment' AND amount > 0)), 0)
           AS issued,
       COALESCE(-sum(amount) FILTER (WHERE type IN ('capture', 'burn')), 0) AS redeemed,
       COALESCE(-sum(amount) FILTER (WHERE type = 'expire'), 0) AS expired
FROM wallet_transactions
WHERE created_at >= now() - make_interval(days => :days)
GROUP BY 1 ORDER BY 1
"""


async def points_per_day(conn: AsyncConnection, days: int = 30) -> list[PointsDay]:
    rows = await conn.execute(text(_PER_DAY), {"days": days})
    return [PointsDay(**r) for r in rows.mappings()]
