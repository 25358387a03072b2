"""Operational workflows. InvariantCheckWorkflow checks the ledger invariants from inside the
worker, so an operator can run (or schedule) the check from Temporal and read the report in the
UI; it doubles as the smoke test that a worker, its database and Temporal are wired together."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy

CHECK_LEDGER_INVARIANTS = "check_ledger_invariants"


class InvariantCheckInput(BaseModel):
    max_violations_per_check: int = Field(default=100, gt=0, le=10_000)


class InvariantViolation(BaseModel):
    check: str
    subject: str
    actual: str
    expected: str


class InvariantReport(BaseModel):
    checks: list[str]
    wallets: int
    transactions: int
    open_holds: int
    violations: list[InvariantViolation]

    @property
    def ok(self) -> bool:
        return not self.violations


@workflow.defn
class InvariantCheckWorkflow:
    @workflow.run
    async def run(self, params: InvariantCheckInput) -> InvariantReport:
        # Referenced by name: the activity module imports SQLAlchemy, which stays out of here.
        return await workflow.execute_activity(
            CHECK_LEDGER_INVARIANTS,
            params,
            result_type=InvariantReport,
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=RetryPolicy(maximum_attempts=3),
            summary="check ledger invariants over every wallet",
        )
