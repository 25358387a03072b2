"""The Temporal contract of the ledger's invariant check (InvariantCheckWorkflow): an operator
runs it from Temporal, or the `ledger-invariants` Schedule does, and reads the report in the UI.
Pydantic only: workflows import it."""

from __future__ import annotations

from pydantic import BaseModel, Field

# The workflow's type name: the schedule (loyalty.ledger.schedule) starts it by this name.
WORKFLOW_NAME = "InvariantCheckWorkflow"


class InvariantCheckInput(BaseModel):
    max_violations_per_check: int = Field(default=100, gt=0, le=10_000)
    # Stuck money: holds open past their expiry plus the grace, and running checkouts whose hold
    # the ledger resolved more than the grace ago. Off: only the ledger's own consistency.
    stuck_money: bool = True
    # None: the worker's HOLD_EXPIRY_GRACE_SECONDS.
    hold_expiry_grace_seconds: int | None = Field(default=None, ge=0, le=7 * 86400)


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
    # Running checkouts shown as `held` that the stuck-money check compared with the ledger.
    held_checkouts: int = 0
    violations: list[InvariantViolation]

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def failed_checks(self) -> list[str]:
        """The checks with a violation, in the order they ran."""
        failed = {v.check for v in self.violations}
        return [c for c in self.checks if c in failed]
