"""The Temporal contract of the ledger's invariant check (InvariantCheckWorkflow): an operator
runs it from Temporal and reads the report in the UI. Pydantic only: workflows import it."""

from __future__ import annotations

from pydantic import BaseModel, Field


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
