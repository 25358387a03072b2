"""Every workflow class the worker registers; add new ones here."""

from __future__ import annotations

from workflows.earning import AccrualWorkflow, RefundWorkflow
from workflows.expiry import PointsExpiryWorkflow
from workflows.ledger import InvariantCheckWorkflow
from workflows.reconciliation import ReconciliationWorkflow
from workflows.redemption import RedemptionWorkflow
from workflows.tiers import TierEvaluationWorkflow
from workflows.vouchers import VoucherPurchaseWorkflow

WORKFLOWS: list[type] = [
    InvariantCheckWorkflow,
    RedemptionWorkflow,
    VoucherPurchaseWorkflow,
    TierEvaluationWorkflow,
    AccrualWorkflow,
    RefundWorkflow,
    ReconciliationWorkflow,
    PointsExpiryWorkflow,
]
