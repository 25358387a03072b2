"""The reconciliation's activities: one batch of one walk each (settled checkouts against
Stripe, open holds against running sagas, voucher purchases against their codes). A batch reads
the ledger, asks the outside party, applies loyalty.reconciliation.rules and records the
findings in one go; a retried batch finds the same and records nothing twice (the findings'
unique key). Counts are of what the batch found, not of what it newly recorded, so a retry
reports the same."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import stripe
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.support import transaction
from loyalty.core.settings import Settings
from loyalty.reconciliation import facts, payments, rules, sagas, store
from loyalty.reconciliation.contracts import BatchResult, ReconcileBatch


class ReconciliationActivities:
    def __init__(
        self, engine: AsyncEngine, settings: Settings, stripe_client: stripe.StripeClient
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._stripe = stripe_client

    def _grace(self, batch: ReconcileBatch) -> timedelta:
        seconds = batch.grace_seconds
        if seconds is None:
            seconds = self._settings.reconciliation_grace_seconds
        return timedelta(seconds=seconds)

    @activity.defn(name="reconcile_payments")
    async def reconcile_payments(self, batch: ReconcileBatch) -> BatchResult:
        """Settled checkouts against their PaymentIntents."""
        async with self._engine.connect() as conn:
            settled = await facts.settled_checkouts(
                conn, after=batch.after, as_of=batch.as_of, limit=batch.limit
            )
        ids = [c.payment_intent_id for c in settled if c.payment_intent_id]
        try:
            intents = await payments.payment_intents(self._stripe, ids)
        except (stripe.AuthenticationError, stripe.PermissionError) as err:
            # A wrong key: no retry fixes it, and a run retrying for hours would hold every
            # later scheduled run off (overlap skip). The run fails, where operators look.
            raise ApplicationError(
                f"Stripe refused the reconciliation's reads: {err.user_message or err}",
                type="stripe_refused",
                non_retryable=True,
            ) from err
        found = [
            f
            for c in settled
            for f in rules.payment_findings(
                c, intents.get(c.payment_intent_id) if c.payment_intent_id else None
            )
        ]
        last = str(settled[-1].tx_id) if settled else None
        return await self._record(batch, len(settled), last, found)

    @activity.defn(name="reconcile_holds")
    async def reconcile_holds(self, batch: ReconcileBatch) -> BatchResult:
        """Open checkout holds against running sagas."""
        async with self._engine.connect() as conn:
            held = await facts.open_holds(
                conn,
                after=batch.after,
                as_of=batch.as_of,
                grace=self._grace(batch),
                limit=batch.limit,
            )
        up = await sagas.running(activity.client(), [h.workflow_id for h in held])
        found = [f for h in held if (f := rules.hold_finding(h, h.workflow_id in up))]
        last = held[-1].hold_id if held else None
        return await self._record(batch, len(held), last, found)

    @activity.defn(name="reconcile_vouchers")
    async def reconcile_vouchers(self, batch: ReconcileBatch) -> BatchResult:
        """Voucher purchases against their issued codes."""
        async with self._engine.connect() as conn:
            bought = await facts.purchases(
                conn,
                after=batch.after,
                as_of=batch.as_of,
                grace=self._grace(batch),
                limit=batch.limit,
            )
        found = [f for p in bought for f in rules.voucher_findings(p)]
        last = bought[-1].purchase_id if bought else None
        return await self._record(batch, len(bought), last, found)

    async def _record(
        self, batch: ReconcileBatch, examined: int, last: str | None, found: Sequence[rules.Finding]
    ) -> BatchResult:
        if found:
            async with transaction(self._engine) as conn:
                await store.record(conn, batch.reconciliation_id, batch.workflow_id, found)
            for f in found:
                activity.logger.warning("reconciliation finding %s on %s", f.kind, f.subject)
        return BatchResult(examined=examined, last=last, findings=rules.count(list(found)))
