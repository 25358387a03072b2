"""TierEvaluationWorkflow: move every wallet to the tier it earns, in batches.

Started daily by the `tier-evaluation` Temporal Schedule (loyalty.tiers.schedule), or by hand:
`temporal schedule trigger --schedule-id tier-evaluation`. The first run snapshots the ladder
and fixes `as_of` (the workflow's start time unless given), so every batch classifies against
the same ladder and the same instant. Batches walk wallets by id (keyset); after
`batches_per_run` batches, or when Temporal suggests it, the workflow continues as new with the
cursor and running totals, so its history stays small however many wallets there are.

Progress is in the `progress` query and the workflow's current details (Temporal UI).
Orchestration only: the classification lives in loyalty.tiers (rules, and the batch SQL in
evaluation).
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

from workflows import policies

with workflow.unsafe.imports_passed_through():
    from activities.tiers import TierActivities
    from loyalty.tiers.contracts import (
        WORKFLOW_NAME,
        TierBatchInput,
        TierEvaluationInput,
        TierEvaluationProgress,
        TierEvaluationResult,
        TierEvaluationState,
        TierNotifyInput,
    )


@workflow.defn(name=WORKFLOW_NAME)
class TierEvaluationWorkflow:
    @workflow.init
    def __init__(self, inp: TierEvaluationInput) -> None:
        self._progress: TierEvaluationProgress | None = inp.state.progress if inp.state else None

    @workflow.query
    def progress(self) -> TierEvaluationProgress | None:
        """Wallets evaluated, changes made, cursor; None until the ladder is loaded."""
        return self._progress

    @workflow.run
    async def run(self, inp: TierEvaluationInput) -> TierEvaluationResult:
        state = inp.state or await self._begin(inp)
        progress = self._progress = state.progress
        self._publish()
        for _ in range(inp.batches_per_run):
            result = await workflow.execute_activity_method(
                TierActivities.evaluate_batch,
                TierBatchInput(
                    evaluation_id=progress.evaluation_id,
                    as_of=progress.as_of,
                    ladder=state.ladder,
                    after=progress.cursor,
                    limit=inp.batch_size,
                    downgrade_grace_days=inp.downgrade_grace_days,
                ),
                start_to_close_timeout=policies.BATCH_TIMEOUT,
                retry_policy=policies.BATCH_RETRY,
                summary=f"batch {progress.batches + 1} after wallet {progress.cursor or 'start'}",
            )
            if result.deliver_notifications and result.last_wallet_id is not None:
                await self._deliver(
                    TierNotifyInput(
                        evaluation_id=progress.evaluation_id,
                        after=progress.cursor,
                        last=result.last_wallet_id,
                    ),
                    result.changes,
                )
            progress.batches += 1
            progress.wallets_evaluated += result.evaluated
            progress.upgraded += result.upgraded
            progress.downgraded += result.downgraded
            progress.downgrades_in_grace += result.downgrades_in_grace
            progress.cursor = result.last_wallet_id or progress.cursor
            if result.evaluated < inp.batch_size:
                progress.status = "done"
                self._publish()
                await workflow.wait_condition(workflow.all_handlers_finished)
                return TierEvaluationResult(progress=progress)
            self._publish()
            if workflow.info().is_continue_as_new_suggested():
                break
        await workflow.wait_condition(workflow.all_handlers_finished)
        progress.runs += 1
        workflow.continue_as_new(inp.model_copy(update={"state": state}))

    async def _begin(self, inp: TierEvaluationInput) -> TierEvaluationState:
        start = await workflow.execute_activity_method(
            TierActivities.start,
            start_to_close_timeout=policies.EVALUATION_START_TIMEOUT,
            retry_policy=policies.BATCH_RETRY,
            summary="snapshot the tier ladder, count wallets",
        )
        now = workflow.now()
        return TierEvaluationState(
            ladder=start.ladder,
            progress=TierEvaluationProgress(
                # Stable across continue-as-new; part of every notification's idempotency key.
                evaluation_id=workflow.info().first_execution_run_id,
                as_of=inp.as_of or now,
                started_at=now,
                wallets_estimate=start.wallets_estimate,
            ),
        )

    async def _deliver(self, batch: TierNotifyInput, changes: int) -> None:
        assert self._progress is not None
        try:
            sent = await workflow.execute_activity_method(
                TierActivities.deliver,
                batch,
                start_to_close_timeout=policies.BATCH_NOTIFY_TIMEOUT,
                retry_policy=policies.NOTIFY_FEW_TIMES,
                summary=f"notify {changes} tier changes",
            )
        except ActivityError:
            # A notification service that stays down must not stall the evaluation: the
            # notifications stay in the outbox (with their error) for a relay or an operator.
            workflow.logger.warning("tier notifications left in the outbox for %s", batch)
            self._progress.notifications_undelivered += changes
            return
        self._progress.notifications_delivered += sent.delivered

    def _publish(self) -> None:
        if self._progress is not None:
            workflow.set_current_details(self._progress.line())
