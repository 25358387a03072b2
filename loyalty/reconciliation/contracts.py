"""The reconciliation's Temporal contract: workflow input, state carried across continue-as-new
(progress), batch inputs and results, and the run's result. Pydantic only (sandbox-safe)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

# The workflow's type name: the schedule (loyalty.reconciliation.schedule) starts it by this
# name, and saved histories name it, so it never changes.
WORKFLOW_NAME = "LedgerReconciliation"

# The walks, in the order a run takes them; each is keyset-paginated on its own cursor.
Phase = Literal["payments", "holds", "vouchers", "done"]
PHASES: tuple[Phase, ...] = ("payments", "holds", "vouchers", "done")

FindingKind = Literal[
    # A captured checkout whose PaymentIntent charged another amount (or currency) than the
    # order minus the points' discount.
    "payment_amount_mismatch",
    # A captured checkout whose PaymentIntent did not succeed.
    "payment_not_succeeded",
    # A released checkout whose PaymentIntent succeeded: the customer paid, the points came back.
    "payment_succeeded_not_captured",
    # A checkout with something left to pay and no PaymentIntent, or one Stripe does not know.
    "payment_intent_missing",
    # An open checkout hold whose saga is not running: nothing will ever resolve it.
    "hold_without_saga",
    # A purchase whose points were burned (not refunded) without an issued voucher.
    "voucher_without_code",
    # An issued voucher whose purchase's points were never burned, or were refunded.
    "voucher_code_without_burn",
]
FINDING_KINDS: tuple[FindingKind, ...] = (
    "payment_amount_mismatch",
    "payment_not_succeeded",
    "payment_succeeded_not_captured",
    "payment_intent_missing",
    "hold_without_saga",
    "voucher_without_code",
    "voucher_code_without_burn",
)


class ReconciliationProgress(BaseModel):
    """What an operator sees through the `progress` query and the workflow's details; also the
    state carried by continue-as-new."""

    reconciliation_id: str = Field(description="the first run's id, stable across the chain")
    workflow_id: str
    status: Literal["running", "done"] = "running"
    as_of: datetime = Field(description="ledger rows written after this are left to the next run")
    phase: Phase = "payments"
    cursor: str | None = Field(default=None, description="last key of the phase's walk")
    examined: dict[str, int] = Field(default_factory=dict, description="rows examined per phase")
    findings: dict[str, int] = Field(default_factory=dict, description="findings per kind")
    batches: int = 0
    runs: int = Field(default=1, description="workflow runs so far (continue-as-new chain)")

    @property
    def total_findings(self) -> int:
        return sum(self.findings.values())

    def line(self) -> str:
        found = ", ".join(f"{k} {n}" for k, n in sorted(self.findings.items())) or "none"
        seen = ", ".join(f"{p} {n}" for p, n in self.examined.items()) or "nothing yet"
        return (
            f"{self.status} ({self.phase}): examined {seen}; findings: {found} "
            f"({self.batches} batches, run {self.runs})"
        )


class ReconciliationInput(BaseModel):
    batch_size: int = Field(default=200, ge=1, le=5000)
    batches_per_run: int = Field(
        default=100, ge=1, description="batches before continue-as-new keeps the history small"
    )
    # Open holds younger than this, and voucher purchases changed more recently, are in flight:
    # their saga may not be listed yet, their code not issued yet. None: the worker's setting.
    grace_seconds: int | None = Field(default=None, ge=0, le=7 * 86400)
    state: ReconciliationProgress | None = None


class ReconcileBatch(BaseModel):
    reconciliation_id: str
    workflow_id: str
    as_of: datetime
    after: str | None
    limit: int
    grace_seconds: int | None = None


class BatchResult(BaseModel):
    examined: int
    last: str | None = Field(description="the key to continue after; None when none examined")
    findings: dict[str, int] = Field(default_factory=dict, description="found in this batch")


class ReconciliationResult(BaseModel):
    """The run's result as the Temporal UI shows it: counts per finding kind, and where to
    read the findings themselves (GET /reconciliation/findings?run=<reconciliation_id>)."""

    reconciliation_id: str
    ok: bool
    findings: dict[str, int]
    examined: dict[str, int]
    as_of: datetime
    batches: int
    runs: int
