"""Tier evaluation against the database: the set-based batch statement, the same classification
over every wallet (the benchmark's baseline), and the real-time upgrade used by the earn path.

Functions take an AsyncConnection inside the caller's transaction and never commit. The
classification SQL mirrors loyalty.tiers.rules.decide; tests compare the two.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.notifications import outbox
from loyalty.notifications.models import Notification, NotificationKind
from loyalty.tiers.contracts import TierBatchInput, TierBatchResult
from loyalty.tiers.rules import (
    Ladder,
    TierStep,
    notification_key,
    trailing_window_start,
)

# Wallets to classify come from `batch (wallet_id, user_id, tier, lifetime_points)`; the rest
# is shared by the batch statement and the whole-table baseline.
_CLASSIFY = """
ladder AS (
    SELECT * FROM unnest(CAST(:codes AS text[]), CAST(:ranks AS int[]),
                         CAST(:thresholds AS bigint[]), CAST(:bases AS text[]))
        AS l(code, rank, threshold, basis)
),
window_points AS (
    SELECT t.wallet_id, SUM(t.amount) AS points
    FROM wallet_transactions t JOIN batch b ON b.wallet_id = t.wallet_id
    WHERE t.type IN ('earn', 'clawback')
      AND t.created_at > CAST(:window_start AS timestamptz)
      AND t.created_at <= CAST(:as_of AS timestamptz)
    GROUP BY t.wallet_id
),
scored AS (
    SELECT b.wallet_id, b.user_id, b.tier, b.lifetime_points,
           COALESCE(tr.points, 0) AS trailing_points,
           cur.rank AS current_rank, earned.code AS earned_tier, earned.rank AS earned_rank,
           s.downgrade_pending_since AS pending_since
    FROM batch b
    LEFT JOIN window_points tr ON tr.wallet_id = b.wallet_id
    LEFT JOIN ladder cur ON cur.code = b.tier
    LEFT JOIN wallet_tier_status s ON s.wallet_id = b.wallet_id
    CROSS JOIN LATERAL (
        SELECT l.code, l.rank FROM ladder l
        WHERE l.code = CAST(:lowest AS text) OR l.threshold <= CASE l.basis
            WHEN 'lifetime' THEN b.lifetime_points ELSE COALESCE(tr.points, 0) END
        ORDER BY l.rank DESC LIMIT 1
    ) earned
),
decided AS (
    SELECT sc.*,
        CASE
            WHEN sc.current_rank IS NULL THEN sc.tier
            WHEN sc.earned_rank > sc.current_rank THEN sc.earned_tier
            WHEN sc.earned_rank < sc.current_rank
                 AND COALESCE(sc.pending_since, CAST(:as_of AS timestamptz))
                     <= CAST(:cutoff AS timestamptz)
                THEN sc.earned_tier
            ELSE sc.tier
        END AS new_tier,
        sc.earned_rank < sc.current_rank AS short
    FROM scored sc
)"""

_BATCH = f"""
WITH batch AS (
    SELECT wallet_id, user_id, tier, lifetime_points FROM wallets
    WHERE wallet_id > :after ORDER BY wallet_id LIMIT :limit
),
{_CLASSIFY},
moved AS (
    UPDATE wallets w SET tier = d.new_tier, updated_at = now()
    FROM decided d
    WHERE w.wallet_id = d.wallet_id AND d.new_tier <> d.tier
      AND w.tier = d.tier  -- unless a real-time upgrade moved it meanwhile
    RETURNING w.wallet_id, w.user_id, d.tier AS from_tier, w.tier AS to_tier,
              CASE WHEN d.earned_rank > d.current_rank THEN 'upgrade' ELSE 'downgrade' END
                  AS direction,
              d.lifetime_points, d.trailing_points
),
history AS (
    INSERT INTO tier_history (wallet_id, from_tier, to_tier, direction, reason, evaluation_id,
                              lifetime_points, trailing_points, as_of)
    SELECT wallet_id, from_tier, to_tier, direction, 'evaluation',
           CAST(:evaluation_id AS text),
           lifetime_points, trailing_points, CAST(:as_of AS timestamptz)
    FROM moved
    ON CONFLICT (evaluation_id, wallet_id) DO NOTHING
),
outbox AS (
    INSERT INTO notification_outbox (idempotency_key, kind, user_id, payload)
    SELECT 'tier:' || wallet_id || ':' || CAST(:evaluation_id AS text) || ':' || to_tier,
           CAST(:kind AS text), user_id,
           jsonb_build_object('from_tier', from_tier, 'to_tier', to_tier,
                              'direction', direction, 'reason', 'evaluation',
                              'evaluation_id', CAST(:evaluation_id AS text))
    FROM moved
    ON CONFLICT (idempotency_key) DO NOTHING
),
pending AS (
    INSERT INTO wallet_tier_status (wallet_id, downgrade_pending_since, downgrade_to,
                                    evaluation_id)
    SELECT wallet_id, CAST(:as_of AS timestamptz), earned_tier, CAST(:evaluation_id AS text)
    FROM decided
    WHERE short AND new_tier = tier
    ON CONFLICT (wallet_id) DO UPDATE
        SET downgrade_to = EXCLUDED.downgrade_to, updated_at = now()
        WHERE wallet_tier_status.downgrade_to <> EXCLUDED.downgrade_to
),
cleared AS (
    DELETE FROM wallet_tier_status s USING decided d
    WHERE s.wallet_id = d.wallet_id AND (NOT d.short OR d.new_tier <> d.tier)
)
SELECT (SELECT count(*) FROM batch) AS evaluated,
       (SELECT wallet_id FROM batch ORDER BY wallet_id DESC LIMIT 1) AS last_wallet_id,
       (SELECT count(*) FROM decided WHERE short AND new_tier = tier) AS in_grace
"""

# Counted from the history rather than from this statement's changes, so a retried batch
# (whose first attempt committed) reports the same numbers.
_RECORDED = """
SELECT count(*) FILTER (WHERE direction = 'upgrade') AS upgraded,
       count(*) FILTER (WHERE direction = 'downgrade') AS downgraded
FROM tier_history
WHERE evaluation_id = CAST(:evaluation_id AS text) AND wallet_id > :after AND wallet_id <= :last
"""

_ALL = f"""
WITH batch AS (SELECT wallet_id, user_id, tier, lifetime_points FROM wallets),
{_CLASSIFY}
SELECT count(*) AS evaluated,
       count(*) FILTER (WHERE new_tier <> tier AND earned_rank > current_rank) AS upgraded,
       count(*) FILTER (WHERE new_tier <> tier AND earned_rank < current_rank) AS downgraded,
       count(*) FILTER (WHERE short AND new_tier = tier) AS in_grace
FROM decided
"""

NIL_UUID = uuid.UUID(int=0)  # below every wallet id: the first batch's cursor


def _params(ladder: Ladder, as_of: datetime, grace: timedelta) -> dict[str, Any]:
    return {
        "codes": [s.code for s in ladder.steps],
        "ranks": [s.rank for s in ladder.steps],
        "thresholds": [s.threshold for s in ladder.steps],
        "bases": [s.basis for s in ladder.steps],
        "lowest": ladder.lowest.code,
        "as_of": as_of,
        "window_start": trailing_window_start(as_of),
        "cutoff": as_of - grace,
    }


async def load_ladder(conn: AsyncConnection) -> Ladder:
    rows = (
        await conn.execute(text("SELECT code, rank, threshold, basis FROM loyalty_tiers"))
    ).mappings()
    return Ladder.of([TierStep(**row) for row in rows])


async def evaluate_batch(conn: AsyncConnection, batch: TierBatchInput) -> TierBatchResult:
    """Classify and move the next `limit` wallets after `after` (by wallet id), in one
    statement: tier changes, history, outbox notifications and grace state together."""
    ladder = Ladder.of(batch.ladder)
    after = batch.after or NIL_UUID
    row = (
        (
            await conn.execute(
                text(_BATCH),
                {
                    **_params(ladder, batch.as_of, timedelta(days=batch.downgrade_grace_days)),
                    "after": after,
                    "limit": batch.limit,
                    "evaluation_id": batch.evaluation_id,
                    "kind": NotificationKind.TIER_CHANGED.value,
                },
            )
        )
        .mappings()
        .one()
    )
    last = row["last_wallet_id"]
    upgraded = downgraded = 0
    if last is not None:
        recorded = (
            (
                await conn.execute(
                    text(_RECORDED),
                    {"evaluation_id": batch.evaluation_id, "after": after, "last": last},
                )
            )
            .mappings()
            .one()
        )
        upgraded, downgraded = recorded["upgraded"], recorded["downgraded"]
    return TierBatchResult(
        evaluated=row["evaluated"],
        last_wallet_id=last,
        upgraded=upgraded,
        downgraded=downgraded,
        downgrades_in_grace=row["in_grace"],
    )


@dataclass(frozen=True)
class Classification:
    evaluated: int
    upgraded: int
    downgraded: int
    in_grace: int


async def classify_all(
    conn: AsyncConnection, ladder: Ladder, as_of: datetime, grace: timedelta
) -> Classification:
    """What an evaluation at `as_of` would do to every wallet, as one read-only statement."""
    row = (await conn.execute(text(_ALL), _params(ladder, as_of, grace))).mappings().one()
    return Classification(**row)


def trailing_points_sql(wallet: str) -> str:
    """A scalar subquery: the trailing-12-month points of the wallet named by the SQL expression
    `wallet`, at the statement's now(). The window is loyalty.tiers.rules.trailing_window_start
    in SQL (UTC calendar months), for statements that read it among other facts."""
    return (
        "(SELECT COALESCE(SUM(amount), 0) FROM wallet_transactions "
        f"WHERE wallet_id = {wallet} AND type IN ('earn', 'clawback') AND created_at <= now() "
        "AND created_at > (now() AT TIME ZONE 'UTC' - interval '12 months') AT TIME ZONE 'UTC')"
    )


async def trailing_points(conn: AsyncConnection, wallet_id: uuid.UUID, as_of: datetime) -> int:
    value = (
        await conn.execute(
            text(
                "SELECT COALESCE(SUM(amount), 0) FROM wallet_transactions "
                "WHERE wallet_id = :w AND type IN ('earn', 'clawback') "
                "AND created_at > :start AND created_at <= :as_of"
            ),
            {"w": wallet_id, "start": trailing_window_start(as_of), "as_of": as_of},
        )
    ).scalar_one()
    return int(value)


@dataclass(frozen=True)
class PendingDowngrade:
    since: datetime
    to_tier: str


async def pending_downgrade(conn: AsyncConnection, wallet_id: uuid.UUID) -> PendingDowngrade | None:
    row = (
        await conn.execute(
            text(
                "SELECT downgrade_pending_since, downgrade_to FROM wallet_tier_status "
                "WHERE wallet_id = :w"
            ),
            {"w": wallet_id},
        )
    ).first()
    return PendingDowngrade(row[0], row[1]) if row else None


def _source(source: str | None, history_id: int) -> str:
    if source is None:
        return f"realtime-{history_id}"
    # Keep the notification key within the outbox's 255 characters whatever the caller's key.
    return source if len(source) <= 100 else hashlib.sha256(source.encode()).hexdigest()


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
    """Move the wallet up at once if its points now earn a higher tier (never down).

    For the earn path: call it in the earn's transaction, after the posting. It records the
    history row and puts the notification in the outbox (key from `source`, e.g. the earn's
    idempotency key, else the history id), and clears a pending downgrade the wallet has
    earned its way out of. Returns None when the tier stays."""
    wallet = (
        await conn.execute(
            text(
                "SELECT user_id, tier, lifetime_points, now() AS as_of FROM wallets "
                "WHERE wallet_id = :w FOR UPDATE"
            ),
            {"w": wallet_id},
        )
    ).one()
    ladder = await load_ladder(conn)
    current = ladder.get(wallet.tier)
    if current is None:
        return None
    needs_trailing = any(s.basis == "trailing_12m" for s in ladder.steps)
    trailing = await trailing_points(conn, wallet_id, wallet.as_of) if needs_trailing else 0
    earned = ladder.earned(lifetime=wallet.lifetime_points, trailing=trailing)
    if earned.rank >= current.rank:
        await conn.execute(
            text("DELETE FROM wallet_tier_status WHERE wallet_id = :w"), {"w": wallet_id}
        )
    if earned.rank <= current.rank:
        return None
    await conn.execute(
        text("UPDATE wallets SET tier = :t, updated_at = now() WHERE wallet_id = :w"),
        {"t": earned.code, "w": wallet_id},
    )
    history_id = (
        await conn.execute(
            text(
                "INSERT INTO tier_history (wallet_id, from_tier, to_tier, direction, reason, "
                "lifetime_points, trailing_points, as_of) "
                "VALUES (:w, :f, :t, 'upgrade', 'realtime', :l, :tr, :as_of) "
                "RETURNING history_id"
            ),
            {
                "w": wallet_id,
                "f": current.code,
                "t": earned.code,
                "l": wallet.lifetime_points,
                "tr": trailing,
                "as_of": wallet.as_of,
            },
        )
    ).scalar_one()
    note = Notification(
        idempotency_key=notification_key(wallet_id, _source(source, history_id), earned.code),
        kind=NotificationKind.TIER_CHANGED,
        user_id=wallet.user_id,
        payload={
            "from_tier": current.code,
            "to_tier": earned.code,
            "direction": "upgrade",
            "reason": "realtime",
        },
    )
    await outbox.enqueue(conn, [note])
    return TierChange(wallet_id, wallet.user_id, current.code, earned.code, history_id, note)
