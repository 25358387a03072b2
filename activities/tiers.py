"""Tier evaluation activities: snapshot the ladder, evaluate one batch of wallets (one
set-based statement, loyalty.tiers.evaluation), deliver the batch's tier-change notifications.

A batch records its tier changes, their history rows and their notifications (in the outbox,
key `tier:{wallet}:{evaluation}:{tier}`) in one transaction, so a retried batch changes nothing
twice and reports the same counts. Delivery is a separate activity: a failing notification
service retries delivery, never the evaluation."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.support import refusals_final, transaction
from loyalty.notifications import delivery
from loyalty.notifications.models import Notification
from loyalty.tiers import evaluation
from loyalty.tiers.contracts import (
    TierBatchInput,
    TierBatchResult,
    TierEvaluationStart,
    TierNotifyInput,
    TierNotifyResult,
)

# Deliveries of one batch in flight at once: a batch can change thousands of tiers, and each
# delivery holds a request to the notification service and records it in the database.
DELIVERY_CONCURRENCY = 8


class TierActivities:
    def __init__(
        self, engine: AsyncEngine, notify_url: str | None, http: httpx.AsyncClient | None = None
    ) -> None:
        self._engine = engine
        self._url = notify_url
        self._http = http or httpx.AsyncClient(timeout=10)

    @activity.defn(name="start_tier_evaluation")
    async def start(self) -> TierEvaluationStart:
        """Snapshot the ladder for the whole evaluation and count the wallets."""
        async with refusals_final(), self._engine.connect() as conn:
            return await evaluation.snapshot(conn)

    @activity.defn(name="evaluate_tier_batch")
    async def evaluate_batch(self, batch: TierBatchInput) -> TierBatchResult:
        """Move the next wallets (by wallet id) to the tiers they earn."""
        async with transaction(self._engine) as conn:
            result = await evaluation.evaluate_batch(conn, batch)
        result.deliver_notifications = self._url is not None and result.changes > 0
        return result

    @activity.defn(name="deliver_tier_notifications")
    async def deliver(self, batch: TierNotifyInput) -> TierNotifyResult:
        """Send the batch's undelivered tier-change notifications (each once, by its key);
        one the service refuses for good is counted, not retried."""
        async with refusals_final(), self._engine.connect() as conn:
            found = await evaluation.batch_notifications(conn, batch)
        # Counted over the whole batch: an earlier attempt may have delivered some already.
        if self._url is None:
            return TierNotifyResult(delivered=found.delivered, queued=len(found.undelivered))
        url = self._url
        gate = asyncio.Semaphore(DELIVERY_CONCURRENCY)

        async def send(note: Notification) -> str:
            async with gate:
                try:
                    return await delivery.deliver(self._engine, self._http, url, note)
                except delivery.NotificationRefused as exc:
                    activity.logger.warning("notification %s refused: %s", note, exc)
                    return "refused"

        notes = found.undelivered
        outcomes = await asyncio.gather(*(send(n) for n in notes), return_exceptions=True)
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        if failed:  # retry the activity; notifications already delivered are skipped then
            raise RuntimeError(f"{len(failed)} of {len(notes)} notifications failed: {failed[0]}")
        return TierNotifyResult(
            delivered=found.delivered
            + sum(o in ("delivered", "already_delivered") for o in outcomes),
            queued=0,
            refused=sum(o == "refused" for o in outcomes),
        )
