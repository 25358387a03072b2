"""The Temporal contracts of a voucher purchase: VoucherPurchaseWorkflow's id, input, status and
result, the commands and answers of its activities, and the notification it sends. The issued
voucher (VoucherOut) is here too: the workflow returns it, and the API answers with it.

Pydantic only (no I/O): the workflow imports this module through `imports_passed_through`; the
activities, the API and the tests import it directly."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from loyalty.notifications.models import Notification, NotificationKind
from loyalty.vouchers.rules import VoucherStatus

PurchaseStatus = Literal["reserved", "paid", "completed", "failed"]
WorkflowStep = Literal[
    "reserving",
    "burning",
    "issuing",
    "notifying",
    "completed",
    "compensating",
    "failed",
    "rejected",
]


def workflow_id_for(user_id: str, idempotency_key: str) -> str:
    """One workflow per (customer, client key): a retried request meets the same purchase."""
    return f"voucher-purchase-{user_id}-{idempotency_key}"


class VoucherOut(BaseModel):
    voucher_id: uuid.UUID
    code: str
    status: VoucherStatus = Field(description="`expired` once past expires_at while unused")
    product_id: uuid.UUID
    product_name: str
    user_id: str
    price_points: int
    purchase_id: uuid.UUID
    issued_at: datetime
    expires_at: datetime | None
    used_at: datetime | None
    used_reference: str | None


class PurchaseInput(BaseModel):
    user_id: str
    product_id: uuid.UUID
    idempotency_key: str


class ReserveVoucher(BaseModel):
    user_id: str
    product_id: uuid.UUID
    idempotency_key: str
    run_id: str


class Reservation(BaseModel):
    purchase_id: uuid.UUID
    attempt: int
    product_name: str
    price_points: int
    status: PurchaseStatus
    burn_tx_id: int | None = None
    voucher: VoucherOut | None = None


class BurnPoints(BaseModel):
    purchase_id: uuid.UUID
    attempt: int
    user_id: str
    points: int
    product_name: str


class PointsBurned(BaseModel):
    tx_id: int


class IssueVoucher(BaseModel):
    purchase_id: uuid.UUID


class RefundPoints(BaseModel):
    purchase_id: uuid.UUID
    attempt: int
    burn_tx_id: int
    points: int


class ReleaseReservation(BaseModel):
    purchase_id: uuid.UUID
    attempt: int
    failure_code: str
    failure_message: str


class PurchaseRefusal(BaseModel):
    """A business refusal (sold out, not enough points ...): the LoyaltyError's code, message
    and details, which the client raises again."""

    code: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class PurchaseResult(BaseModel):
    """The workflow's result: the voucher, or (status `rejected`) the refusal that left points
    and inventory as they were. A purchase that broke fails instead (voucher_purchase_failed)."""

    user_id: str
    product_id: uuid.UUID
    idempotency_key: str
    status: Literal["completed", "rejected"] = "completed"
    voucher: VoucherOut | None = None
    refusal: PurchaseRefusal | None = None
    notified: bool = False


class PurchaseState(BaseModel):
    """Answer of the workflow's `status` query."""

    step: WorkflowStep
    user_id: str
    product_id: uuid.UUID
    purchase_id: uuid.UUID | None = None
    burn_tx_id: int | None = None
    voucher_id: uuid.UUID | None = None
    error_code: str | None = None
    error_message: str | None = None


def delivery_notification(voucher: VoucherOut) -> Notification:
    """The customer's code, keyed by the voucher so it is one event however often it is sent."""
    return Notification(
        idempotency_key=f"voucher-delivered:{voucher.voucher_id}",
        kind=NotificationKind.VOUCHER_DELIVERED,
        user_id=voucher.user_id,
        payload={
            "voucher_id": str(voucher.voucher_id),
            "code": voucher.code,
            "product_name": voucher.product_name,
            "expires_at": voucher.expires_at.isoformat() if voucher.expires_at else None,
        },
    )
