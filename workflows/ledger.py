"""InvariantCheckWorkflow checks the ledger invariants from inside the worker, so an operator can
run (or schedule) the check from Temporal and read the report in the UI; it doubles as the smoke
test that a worker, its database and Temporal are wired together."""

from __future__ import annotations

from temporalio import workflow

from workflows import policies

with workflow.unsafe.imports_passed_through():
    from activities.ledger import LedgerActivities
    from loyalty.ledger.contracts import InvariantCheckInput, InvariantReport


@workflow.defn
class InvariantCheckWorkflow:
    @workflow.run
    async def run(self, params: InvariantCheckInput) -> InvariantReport:
        return await workflow.execute_activity_method(
            LedgerActivities.check_invariants,
            params,
            start_to_close_timeout=policies.INVARIANT_CHECK_TIMEOUT,
            retry_policy=policies.INVARIANT_CHECK,
            summary="check ledger invariants over every wallet",
        )
