"""ReconciliationWorkflow: compare the ledger with what lies outside it, in batches.

Started by the `ledger-reconciliation` Temporal Schedule (loyalty.reconciliation.schedule), or
by hand: `temporal schedule trigger --schedule-id ledger-reconciliation`. The first run fixes
`as_of` (its start time): every walk reads only ledger rows older than that, so a run covers a
fixed set. Three walks, one after the other, each keyset-paginated on its own cursor: settled
checkouts against their Stripe PaymentIntents, open checkout holds against running sagas, and
voucher purchases against their issued codes. Each batch is one activity that records its
findings (once per run, kind and subject). After `batches_per_run` batches, or when Temporal
suggests it, the workflow continues as new with its progress, so its history stays small.

Findings are a report, not a failure: the run completes with the counts per kind as its result
(what the Temporal UI shows), logs one line at error level when there are any, and operators
list the findings themselves with GET /reconciliation/findings?run=<reconciliation id>.
Progress is in the `progress` query and the workflow's current details. Orchestration only: the
rules live in loyalty.reconciliation."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from temporalio import workflow

from workflows import policies

with workflow.unsafe.imports_passed_through():
    from activities.reconciliation import ReconciliationActivities
    from loyalty.reconciliation.contracts import (
        PHASES,
        WORKFLOW_NAME,
        BatchResult,
        Phase,
        ReconcileBatch,
        ReconciliationInput,
        ReconciliationProgress,
        ReconciliationResult,
    )

Walk = Callable[[ReconciliationActivities, ReconcileBatch], Coroutine[Any, Any, BatchResult]]
WALKS: dict[Phase, Walk] = {
    "payments": ReconciliationActivities.reconcile_payments,
    "holds": ReconciliationActivities.reconcile_holds,
    "vouchers": ReconciliationActivities.reconcile_vouchers,
}


@workflow.defn(name=WORKFLOW_NAME)
class ReconciliationWorkflow:
    @workflow.init
    def __init__(self, inp: ReconciliationInput) -> None:
        self._progress: ReconciliationProgress | None = inp.state

    @workflow.query
    def progress(self) -> ReconciliationProgress | None:
        """Phase, cursor, rows examined and findings so far."""
        return self._progress

    @workflow.run
    async def run(self, inp: ReconciliationInput) -> ReconciliationResult:
        info = workflow.info()
        progress = self._progress = inp.state or ReconciliationProgress(
            # Stable across continue-as-new: the findings' run key.
            reconciliation_id=info.first_execution_run_id,
            workflow_id=info.workflow_id,
            as_of=workflow.now(),
        )
        self._publish()
        for _ in range(inp.batches_per_run):
            if progress.phase == "done":
                break
            phase = progress.phase
            result = await workflow.execute_activity_method(
                WALKS[phase],
                ReconcileBatch(
                    reconciliation_id=progress.reconciliation_id,
                    workflow_id=progress.workflow_id,
                    as_of=progress.as_of,
                    after=progress.cursor,
                    limit=inp.batch_size,
                    grace_seconds=inp.grace_seconds,
                ),
                start_to_close_timeout=policies.RECONCILE_BATCH_TIMEOUT,
                retry_policy=policies.BATCH_RETRY,
                summary=f"{phase} batch {progress.batches + 1} after {progress.cursor or 'start'}",
            )
            self._absorb(progress, phase, result, inp.batch_size)
            self._publish()
            if workflow.info().is_continue_as_new_suggested():
                break
        if progress.phase != "done":
            progress.runs += 1
            workflow.continue_as_new(inp.model_copy(update={"state": progress}))
        progress.status = "done"
        self._publish()
        if progress.total_findings:
            workflow.logger.error("reconciliation found mismatches: %s", progress.findings)
        return ReconciliationResult(
            reconciliation_id=progress.reconciliation_id,
            ok=progress.total_findings == 0,
            findings=progress.findings,
            examined=progress.examined,
            as_of=progress.as_of,
            batches=progress.batches,
            runs=progress.runs,
        )

    @staticmethod
    def _absorb(
        progress: ReconciliationProgress, phase: Phase, result: BatchResult, batch_size: int
    ) -> None:
        progress.batches += 1
        progress.examined[phase] = progress.examined.get(phase, 0) + result.examined
        for kind, n in result.findings.items():
            progress.findings[kind] = progress.findings.get(kind, 0) + n
        if result.examined < batch_size:  # the walk is over: the next one starts afresh
            progress.phase = PHASES[PHASES.index(phase) + 1]
            progress.cursor = None
        else:
            progress.cursor = result.last

    def _publish(self) -> None:
        if self._progress is not None:
            workflow.set_current_details(self._progress.line())
