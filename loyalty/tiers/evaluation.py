"""The evaluation of every wallet, set-based: the ladder snapshot an evaluation starts from, one
statement per batch of wallets (classification, tier changes, history, outbox notifications and
grace state together), the batch's notifications for delivery, and the same classification over
every wallet as one read-only statement (the benchmark's baseline).

The classification SQL mirrors loyalty.tiers.rules.decide; tests compare the two. Functions take
an AsyncConnection inside the caller's transaction and never commit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.notifications.models import Notification, NotificationKind
from loyalty.observability import metrics
from loyalty.tiers.contracts import (
    TierBatchInput,
    TierBatchResult,
    TierEvaluationStart,
    TierNotifyInput,
)
from loyalty.tiers.rules import DEBT_TABLE, Ladder, trailing_window_start
from loyalty.tiers.store import QUALIFYING_SQL, load_ladder

NIL_UUID = uuid.UUID(int=0)  # below every wallet id: the first batch's cursor


def _notification_key_sql(wallet: str, evaluation: str, tier: str) -> str:
    """loyalty.tiers.rules.notification_key in SQL, over the given SQL expressions."""
    return f"'tier:' || {wallet} || ':' || {evaluation} || ':' || {tier}"


# Wallets to classify come from `batch (wallet_id, user_id, tier, lifetime_points)`; the rest
# is shared by the batch statement and the whole-table baseline.
_CLASSIFY = f"""
ladder AS (
    SELECT * FROM unnest(CAST(:codes AS text[]), CAST(:ranks AS int[]),
                         CAST(:thresholds AS bigint[]), CAST(:bases AS text[]))
        AS l(code, rank, threshold, basis)
),
window_points AS (
    SELECT t.wallet_id, SUM(t.amount) AS points
    FROM wallet_transactions t JOIN batch b ON b.wallet_id = t.wallet_id
    WHERE t.type IN ({QUALIFYING_SQL})
      AND t.created_at > CAST(:window_start AS timestamptz)
      AND t.created_at <= CAST(:as_of AS timestamptz)
    GROUP BY t.wallet_id
),
window_debts AS (  -- owed points count as taken back (loyalty.tiers.rules: points kept)
    SELECT b.wallet_id, SUM(d.points) AS points
    FROM {DEBT_TABLE} d JOIN batch b ON b.user_id = d.user_id
    WHERE d.created_at > CAST(:window_start AS timestamptz)
      AND d.created_at <= CAST(:as_of AS timestamptz)
    GROUP BY b.wallet_id
),
trailing_kept AS (
    SELECT b.wallet_id, COALESCE(tr.points, 0) - COALESCE(td.points, 0) AS points
    FROM batch b
    LEFT JOIN window_points tr ON tr.wallet_id = b.wallet_id
    LEFT JOIN window_debts td ON td.wallet_id = b.wallet_id
),
scored AS (
    SELECT b.wallet_id, b.user_id, b.tier, b.lifetime_points,
           tr.points AS trailing_points,
           cur.rank AS current_rank, earned.code AS earned_tier, earned.rank AS earned_rank,
           s.downgrade_pending_since AS pending_since
    FROM batch b
    JOIN trailing_kept tr ON tr.wallet_id = b.wallet_id
    LEFT JOIN ladder cur ON cur.code = b.tier
    LEFT JOIN wallet_tier_status s ON s.wallet_id = b.wallet_id
    CROSS JOIN LATERAL (
        SELECT l.code, l.rank FROM ladder l
        WHERE l.code = CAST(:lowest AS text) OR l.threshold <= CASE l.basis
            WHEN 'lifetime' THEN b.lifetime_points ELSE tr.points END
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
    SELECT {_notification_key_sql("wallet_id", "CAST(:evaluation_id AS text)", "to_tier")},
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
       (SELECT count(*) FROM decided WHERE short AND new_tier = tier) AS in_grace,
       -- moved by this statement only (a retried batch moves none again): for the metrics
       (SELECT count(*) FROM moved WHERE direction = 'upgrade') AS moved_up,
       (SELECT count(*) FROM moved WHERE direction = 'downgrade') AS moved_down
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

# The notifications of the changes a batch recorded (its wallet range, this evaluation).
_BATCH_NOTES = f"""
SELECT o.idempotency_key, o.kind, o.user_id, o.payload, o.delivered_at IS NOT NULL AS delivered
FROM tier_history h
JOIN notification_outbox o
    ON o.idempotency_key = {_notification_key_sql("h.wallet_id", "h.evaluation_id", "h.to_tier")}
WHERE h.evaluation_id = :evaluation_id AND h.wallet_id > :after AND h.wallet_id <= :last
"""

_WALLET_COUNT = "SELECT count(*) FROM wallets"


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


async def snapshot(conn: AsyncConnection) -> TierEvaluationStart:
    """The ladder every batch of an evaluation classifies against, and how many wallets there
    are to evaluate (an estimate for progress: wallets keep being opened)."""
    ladder = await load_ladder(conn)
    count = (await conn.execute(text(_WALLET_COUNT))).scalar_one()
    return TierEvaluationStart(ladder=list(ladder.steps), wallets_estimate=count)


async def evaluate_batch(conn: AsyncConnection, batch: TierBatchInput) -> TierBatchResult:
    """Classify and move the next `limit` wallets after `after` (by wallet id), in one
    statement: tier changes, history, outbox notifications and grace state together."""
    ladder = Ladder.of(batch.ladder)
    after = batch.after or NIL_UUID
    params = {
        **_params(ladder, batch.as_of, timedelta(days=batch.downgrade_grace_days)),
        "after": after,
        "limit": batch.limit,
        "evaluation_id": batch.evaluation_id,
        "kind": NotificationKind.TIER_CHANGED.value,
    }
    row = (await conn.execute(text(_BATCH), params)).mappings().one()
    metrics.count_tier_changes(conn, "upgrade", "evaluation", row["moved_up"])
    metrics.count_tier_changes(conn, "downgrade", "evaluation", row["moved_down"])
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
class BatchNotifications:
    delivered: int  # delivered already (by an earlier attempt of the delivery)
    undelivered: list[Notification]


async def batch_notifications(conn: AsyncConnection, batch: TierNotifyInput) -> BatchNotifications:
    """The tier-change notifications a batch put in the outbox, split by delivery so far."""
    rows = (
        await conn.execute(
            text(_BATCH_NOTES),
            {
                "evaluation_id": batch.evaluation_id,
                "after": batch.after or NIL_UUID,
                "last": batch.last,
            },
        )
    ).all()
    return BatchNotifications(
        delivered=sum(1 for r in rows if r.delivered),
        undelivered=[
            Notification(idempotency_key=r[0], kind=r[1], user_id=r[2], payload=r[3])
            for r in rows
            if not r.delivered
        ],
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
