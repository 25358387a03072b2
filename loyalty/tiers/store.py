"""One wallet's tier against the database: the ladder, the wallet's trailing-window points, its
pending downgrade, and the real-time upgrade the earn path applies after a posting. (The
evaluation of every wallet, in batches, is loyalty.tiers.evaluation.)

Functions take an AsyncConnection inside the caller's transaction and never commit. The SQL
windows mirror loyalty.tiers.rules: the points that count and the trailing months come from
there.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.notifications import outbox
from loyalty.notifications.models import Notification, NotificationKind
from loyalty.observability import metrics
from loyalty.tiers.rules import (
    DEBT_TABLE,
    QUALIFYING_TYPES,
    TRAILING_MONTHS,
    Ladder,
    notification_key,
    realtime,
    realtime_source,
    trailing_window_start,
)

# The ledger rows that count towards a trailing-window basis, as an SQL list.
QUALIFYING_SQL = ", ".join(f"'{kind}'" for kind in QUALIFYING_TYPES)


def kept_points_sql(wallet: str, user: str, start: str, end: str) -> str:
    """A scalar expression: the points kept (loyalty.tiers.rules) in `(start, end]` by the
    wallet and user named by the SQL expressions `wallet` and `user`: its earn and clawback
    rows, less its debt entries (a refund's debt counts as taken back when it is recorded; a
    repayment's clawback row and its negative entry cancel)."""
    return (
        "((SELECT COALESCE(SUM(amount), 0) FROM wallet_transactions "
        f"WHERE wallet_id = {wallet} AND type IN ({QUALIFYING_SQL}) "
        f"AND created_at > {start} AND created_at <= {end}) - "
        f"(SELECT COALESCE(SUM(points), 0) FROM {DEBT_TABLE} "
        f"WHERE user_id = {user} AND created_at > {start} AND created_at <= {end}))"
    )


_LADDER = text("SELECT code, rank, threshold, basis FROM loyalty_tiers")
_USER_OF = "(SELECT user_id FROM wallets WHERE wallet_id = {})"
_TRAILING = text("SELECT " + kept_points_sql(":w", _USER_OF.format(":w"), ":start", ":as_of"))
_PENDING = text(
    "SELECT downgrade_pending_since, downgrade_to FROM wallet_tier_status WHERE wallet_id = :w"
)
_LOCK_WALLET = text(
    "SELECT user_id, tier, lifetime_points, now() AS as_of FROM wallets "
    "WHERE wallet_id = :w FOR UPDATE"
)
_CLEAR_PENDING = text("DELETE FROM wallet_tier_status WHERE wallet_id = :w")
_MOVE = text("UPDATE wallets SET tier = :t, updated_at = now() WHERE wallet_id = :w")
_RECORD = text(
    "INSERT INTO tier_history (wallet_id, from_tier, to_tier, direction, reason, "
    "lifetime_points, trailing_points, as_of) "
    "VALUES (:w, :f, :t, 'upgrade', 'realtime', :l, :tr, :as_of) "
    "RETURNING history_id"
)


async def load_ladder(conn: AsyncConnection) -> Ladder:
    rows = (await conn.execute(_LADDER)).mappings()
    return Ladder.of_rows(rows)


def trailing_points_sql(wallet: str) -> str:
    """A scalar subquery: the trailing-window points of the wallet named by the SQL expression
    `wallet`, at the statement's now(). The window is loyalty.tiers.rules.trailing_window_start
    in SQL (UTC calendar months), for statements that read it among other facts."""
    return kept_points_sql(
        wallet,
        _USER_OF.format(wallet),
        f"((now() AT TIME ZONE 'UTC' - interval '{TRAILING_MONTHS} months') AT TIME ZONE 'UTC')",
        "now()",
    )


async def trailing_points(conn: AsyncConnection, wallet_id: uuid.UUID, as_of: datetime) -> int:
    params = {"w": wallet_id, "start": trailing_window_start(as_of), "as_of": as_of}
    return int((await conn.execute(_TRAILING, params)).scalar_one())


@dataclass(frozen=True)
class PendingDowngrade:
    since: datetime
    to_tier: str


async def pending_downgrade(conn: AsyncConnection, wallet_id: uuid.UUID) -> PendingDowngrade | None:
    row = (await conn.execute(_PENDING, {"w": wallet_id})).first()
    return PendingDowngrade(row[0], row[1]) if row else None


@dataclass(frozen=True)
class TierChange:
    wallet_id: uuid.UUID
    user_id: str
    from_tier: str
    to_tier: str
    history_id: int
    notification: Notification  # already in the outbox; send it with the send_notification activity


async def apply_realtime_upgrade(
    conn: AsyncConnection, wallet_id: uuid.UUID, *, source: str | None = None
) -> TierChange | None:
    """Move the wallet up at once if its points now earn a higher tier (never down), as
    loyalty.tiers.rules.realtime decides.

    For the earn path: call it in the earn's transaction, after the posting. It records the
    history row and puts the notification in the outbox (key from `source`, e.g. the earn's
    idempotency key, else the history id), and clears a pending downgrade the wallet has
    earned its way out of. Returns None when the tier stays."""
    wallet = (await conn.execute(_LOCK_WALLET, {"w": wallet_id})).one()
    ladder = await load_ladder(conn)
    trailing = await trailing_points(conn, wallet_id, wallet.as_of) if ladder.counts_trailing else 0
    decision = realtime(ladder, wallet.tier, lifetime=wallet.lifetime_points, trailing=trailing)
    if decision.clear_pending:
        await conn.execute(_CLEAR_PENDING, {"w": wallet_id})
    if decision.upgrade_to is None:
        return None
    to_tier = decision.upgrade_to
    await conn.execute(_MOVE, {"t": to_tier, "w": wallet_id})
    history_id = (
        await conn.execute(
            _RECORD,
            {
                "w": wallet_id,
                "f": wallet.tier,
                "t": to_tier,
                "l": wallet.lifetime_points,
                "tr": trailing,
                "as_of": wallet.as_of,
            },
        )
    ).scalar_one()
    note = Notification(
        idempotency_key=notification_key(wallet_id, realtime_source(source, history_id), to_tier),
        kind=NotificationKind.TIER_CHANGED,
        user_id=wallet.user_id,
        payload={
            "from_tier": wallet.tier,
            "to_tier": to_tier,
            "direction": "upgrade",
            "reason": "realtime",
        },
    )
    await outbox.enqueue(conn, [note])
    metrics.count_tier_changes(conn, "upgrade", "realtime")
    return TierChange(wallet_id, wallet.user_id, wallet.tier, to_tier, history_id, note)
