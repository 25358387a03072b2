"""Tier evaluation activities: snapshot the ladder, evaluate one batch of wallets (one
set-based statement), deliver the batch's tier-change notifications.

A batch records its tier changes, their history rows and their notifications (in the outbox,
key `tier:{wallet}:{evaluation}:{tier}`) in one transaction, so a retried batch changes nothing
twice and reports the same counts. Delivery is a separate activity: a failing notification
service retries delivery, never the evaluation."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.notifications import NotificationActivities
from activities.support import refusals_final, transaction
from loyalty.notifications.models import Notification
from loyalty.tiers import store as tier_store
from loyalty.tiers.contracts import (
    ACTIVITY_BATCH,
    ACTIVITY_NOTIFY,
    ACTIVITY_START,
    TierBatchInput,
    TierBatchResult,
    TierEvaluationStart,
    TierNotifyInput,
    TierNotifyResult,
)

DELIVERY_CONCURRENCY = 8

_BATCH_NOTES = """
SELECT o.idempotency_key, o.kind, o.user_id, o.payload, o.delivered_at IS NOT NULL AS delivered
FROM tier_history h
JOIN notification_outbox o
    ON o.idempotency_key = 'tier:' || h.wallet_id || ':' || h.evaluation_id || ':' || h.to_tier
WHERE h.evaluation_id = :evaluation_id AND h.wallet_id > :after AND h.wallet_id <= :last
"""


class TierActivities:
    def __init__(
        self, engine: AsyncEngine, notify_url: str | None, http: httpx.AsyncClient | None = None
    ) -> None:
        self._engine = engine
        self._notifier = NotificationActivities(engine, notify_url, http) if notify_url else None

    @activity.defn(name=ACTIVITY_START)
    async def start(self) -> TierEvaluationStart:
        """Snapshot the ladder for the whole evaluation and count the wallets."""
        async with refusals_final(), self._engine.connect() as conn:
            ladder = await tier_store.load_ladder(conn)
            count = (await conn.execute(text("SELECT count(*) FROM wallets"))).scalar_one()
        return TierEvaluationStart(ladder=list(ladder.steps), wallets_estimate=count)

    @activity.defn(name=ACTIVITY_BATCH)
    async def evaluate_batch(self, batch: TierBatchInput) -> TierBatchResult:
        """Move the next wallets (by wallet id) to the tiers they earn."""
        async with transaction(self._engine) as conn:
            result = await tier_store.evaluate_batch(conn, batch)
        result.deliver_notifications = self._notifier is not None and result.changes > 0
        return result

    @activity.defn(name=ACTIVITY_NOTIFY)
    async def deliver(self, batch: TierNotifyInput) -> TierNotifyResult:
        """Send the batch's undelivered tier-change notifications (each once, by its key)."""
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(_BATCH_NOTES),
                    {
                        "evaluation_id": batch.evaluation_id,
                        "after": batch.after or tier_store.NIL_UUID,
                        "last": batch.last,
                    },
                )
            ).all()
        # Counted over the whole batch: an earlier attempt may have delivered some already.
        done = sum(1 for r in rows if r.delivered)
        notes = [
            Notification(idempotency_key=r[0], kind=r[1], user_id=r[2], payload=r[3])
            for r in rows
            if not r.delivered
        ]
        if self._notifier is None:
            return TierNotifyResult(delivered=done, queued=len(notes))
        notifier = self._notifier
        gate = asyncio.Semaphore(DELIVERY_CONCURRENCY)

        async def send(note: Notification) -> str:
            async with gate:
                try:
                    return await notifier.send(note)
                except ApplicationError as exc:
                    if exc.non_retryable:
                        activity.logger.warning("notification %s refused: %s", note, exc)
                        return "refused"
                    raise

        outcomes = await asyncio.gather(*(send(n) for n in notes), return_exceptions=True)
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        if failed:  # retry the activity; notifications already delivered are skipped then
            raise RuntimeError(f"{len(failed)} of {len(notes)} notifications failed: {failed[0]}")
        return TierNotifyResult(
            delivered=done + sum(o in ("delivered", "already_delivered") for o in outcomes),
            queued=0,
            refused=sum(o == "refused" for o in outcomes),
        )
