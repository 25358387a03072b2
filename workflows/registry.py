"""Every workflow class the worker registers; add new ones here."""

from __future__ import annotations

from workflows.accrual import AccrualWorkflow
from workflows.maintenance import InvariantCheckWorkflow
from workflows.redemption import RedemptionWorkflow
from workflows.refund import RefundWorkflow
from workflows.tier_evaluation import TierEvaluationWorkflow
from workflows.voucher_purchase import VoucherPurchaseWorkflow

WORKFLOWS: list[type] = [
    InvariantCheckWorkflow,
    RedemptionWorkflow,
    VoucherPurchaseWorkflow,
    TierEvaluationWorkflow,
    AccrualWorkflow,
    RefundWorkflow,
]
