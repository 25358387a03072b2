"""InvariantCheckWorkflow checks the ledger invariants from inside the worker, so an operator can
run (or schedule: the `ledger-invariants` Schedule runs it every few minutes) the check from
Temporal and read the report in the UI; it doubles as the smoke test that a worker, its database
and Temporal are wired together.

Violations are a report, not a failure: the run completes with them in its result, sets the
LedgerAlert search attribute to the names of the failed checks (operators list such runs with
`LedgerAlert IS NOT NULL`) and logs one line at error level. Failing the run instead would leave
the report out of its result and make a failed run mean two things (the check could not run, or
the ledger is wrong); only the first is a failure here."""

from __future__ import annotations

from temporalio import workflow

from workflows import policies

with workflow.unsafe.imports_passed_through():
    from activities.ledger import LedgerActivities
    from loyalty.core import search_attributes as sa
    from loyalty.ledger.contracts import WORKFLOW_NAME, InvariantCheckInput, InvariantReport

# Runs recorded before the alert existed completed right after the activity; they replay
# without it.
ALERT_PATCH = "ledger-alert"


@workflow.defn(name=WORKFLOW_NAME)
class InvariantCheckWorkflow:
    @workflow.run
    async def run(self, params: InvariantCheckInput) -> InvariantReport:
        report = await workflow.execute_activity_method(
            LedgerActivities.check_invariants,
            params,
            start_to_close_timeout=policies.INVARIANT_CHECK_TIMEOUT,
            retry_policy=policies.INVARIANT_CHECK,
            summary="check ledger invariants over every wallet",
        )
        failed = report.failed_checks
        if failed and workflow.patched(ALERT_PATCH):
            alert = "; ".join(failed)
            workflow.upsert_search_attributes([sa.LEDGER_ALERT.value_set(alert)])
            workflow.logger.error(
                "ledger invariants violated: %d violation(s) of %s", len(report.violations), alert
            )
        return report
