"""PointsExpiryWorkflow: expire every lot due at the run's instant, then remind customers of the
points due soon, in batches.

Started daily by the `points-expiry` Temporal Schedule (loyalty.expiry.schedule), or by hand:
`temporal schedule trigger --schedule-id points-expiry`. The first run fixes `as_of` (the
workflow's start time unless given: under a time-skipping test server, the skipped-to time) and
the ledger row it starts after. Batches walk the due lots by (expires_at, lot_id) (keyset), then
the lots due within the reminder window; after `batches_per_run` batches, or when Temporal
suggests it, the workflow continues as new with its progress, so its history stays small however
many lots there are. A worker killed mid-batch: the batch stops heartbeating, Temporal retries it
on another worker, and it posts nothing twice (loyalty.expiry.expiring).

Progress is in the `progress` query and the workflow's current details (Temporal UI).
Orchestration only: the rules live in loyalty.expiry.rules, the SQL in loyalty.expiry.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from workflows import policies

with workflow.unsafe.imports_passed_through():
    from activities.expiry import ExpiryActivities
    from loyalty.expiry import rules
    from loyalty.expiry.contracts import (
        WORKFLOW_NAME,
        ExpiryBatchInput,
        ExpiryInput,
        ExpiryProgress,
        ExpiryResult,
        ExpiryStartInput,
        ReminderBatchInput,
    )


@workflow.defn(name=WORKFLOW_NAME)
class PointsExpiryWorkflow:
    @workflow.init
    def __init__(self, inp: ExpiryInput) -> None:
        self._progress: ExpiryProgress | None = inp.progress

    @workflow.query
    def progress(self) -> ExpiryProgress | None:
        """Lots and points expired, wallets touched, customers reminded, the last keyset; None
        until the run has found where to start."""
        return self._progress

    @workflow.run
    async def run(self, inp: ExpiryInput) -> ExpiryResult:
        progress = self._progress = inp.progress or await self._begin(inp)
        self._publish()
        for batch in range(1, inp.batches_per_run + 1):
            if progress.phase == "expiring":
                fetched = await self._expire(inp, progress)
            else:
                fetched = await self._remind(inp, progress)
            progress.batches += 1
            phase = rules.next_phase(progress.phase, fetched, inp.batch_size, inp.reminder_days)
            if phase != progress.phase and progress.phase == "expiring":
                progress.expiring_seconds = (workflow.now() - progress.started_at).total_seconds()
            progress.phase = phase
            if phase == "done":
                progress.status = "done"
                self._publish()
                return ExpiryResult(progress=progress)
            self._publish()
            suggested = workflow.info().is_continue_as_new_suggested()
            if rules.continue_as_new(batch, inp.batches_per_run, suggested):
                break
        progress.runs += 1
        workflow.continue_as_new(inp.model_copy(update={"progress": progress}))

    async def _begin(self, inp: ExpiryInput) -> ExpiryProgress:
        now = workflow.now()
        as_of = inp.as_of or now
        start = await workflow.execute_activity_method(
            ExpiryActivities.start,
            ExpiryStartInput(as_of=as_of),
            start_to_close_timeout=policies.EXPIRY_START_TIMEOUT,
            retry_policy=policies.BATCH_RETRY,
            summary="find the ledger's last row and count the due lots",
        )
        return ExpiryProgress(
            # Stable across continue-as-new; part of every reminder's idempotency key.
            expiry_id=workflow.info().first_execution_run_id,
            as_of=as_of,
            started_at=now,
            tx_watermark=start.tx_watermark,
            due_estimate=start.due_estimate,
            reminder_days=inp.reminder_days,
            reminder_until=rules.reminder_until(as_of, inp.reminder_days),
        )

    async def _expire(self, inp: ExpiryInput, progress: ExpiryProgress) -> int:
        result = await workflow.execute_activity_method(
            ExpiryActivities.expire_batch,
            ExpiryBatchInput(
                expiry_id=progress.expiry_id,
                as_of=progress.as_of,
                tx_watermark=progress.tx_watermark,
                after=progress.cursor,
                limit=inp.batch_size,
                concurrency=inp.concurrency,
            ),
            start_to_close_timeout=policies.EXPIRY_BATCH_TIMEOUT,
            heartbeat_timeout=timedelta(seconds=inp.heartbeat_seconds),
            retry_policy=policies.BATCH_RETRY,
            summary=f"expire batch {progress.batches + 1} after {progress.cursor or 'start'}",
        )
        progress.lots_expired += result.lots_expired
        progress.points_expired += result.points_expired
        progress.wallets_touched += result.wallets_new
        progress.cursor = result.last or progress.cursor
        return result.fetched

    async def _remind(self, inp: ExpiryInput, progress: ExpiryProgress) -> int:
        assert progress.reminder_until is not None  # reminding only when reminders are on
        result = await workflow.execute_activity_method(
            ExpiryActivities.remind_batch,
            ReminderBatchInput(
                expiry_id=progress.expiry_id,
                as_of=progress.as_of,
                until=progress.reminder_until,
                after=progress.reminder_cursor,
                limit=inp.batch_size,
            ),
            start_to_close_timeout=policies.BATCH_TIMEOUT,
            retry_policy=policies.BATCH_RETRY,
            summary=f"reminders after {progress.reminder_cursor or 'start'}",
        )
        progress.customers_reminded += result.customers
        progress.lots_reminded += result.lots
        progress.reminder_cursor = result.last or progress.reminder_cursor
        return result.fetched

    def _publish(self) -> None:
        if self._progress is not None:
            workflow.set_current_details(self._progress.line())
