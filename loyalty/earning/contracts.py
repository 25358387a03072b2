"""The Temporal contracts of earning: the inputs, signals, outcomes and ids of the accrual and
refund workflows and their activities. Pydantic only (no I/O): safe to import from workflows."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from loyalty.earning.events import BookingCancelled, BookingConfirmed, PaymentSucceeded
from loyalty.notifications.models import Notification

# --- accrual workflow ------------------------------------------------------------------------


class AccrualInput(BaseModel):
    booking_id: str
    user_id: str
    pending_seconds: int = Field(ge=0, description="points pending this long after payment")
    wait_for_payment_seconds: int = Field(gt=0)


class AccrualNews(BaseModel):
    """A booking event signalled to the accrual workflow."""

    event: BookingConfirmed | PaymentSucceeded | BookingCancelled = Field(discriminator="type")


class EarnCommand(BaseModel):
    booking_id: str
    user_id: str
    payment_id: str | None
    amount_paid: int
    currency: str
    paid_at: datetime
    product_type: str | None = None
    category: str | None = None
    pending_until: datetime | None = None


class ActivateCommand(BaseModel):
    booking_id: str
    user_id: str


AccrualStatus = Literal[
    "waiting_for_payment", "earning", "pending", "posted", "voided", "nothing_to_earn", "cancelled"
]


class EarnOutcome(BaseModel):
    booking_id: str
    status: Literal["posted", "pending", "voided", "nothing_to_earn"]
    points: int = Field(description="points posted (or pending)")
    planned_points: int = Field(description="points the payment earned before any refund")
    idempotency_key: str
    tx_id: int | None = None
    pending_until: datetime | None = None
    replayed: bool = False
    debt_repaid: int = 0
    notifications: list[Notification] = Field(default_factory=list)


class AccrualState(BaseModel):
    booking_id: str
    user_id: str
    status: AccrualStatus
    outcome: EarnOutcome | None = None
    events: list[str] = Field(default_factory=list, description="event ids acted on")


# --- refund workflow -------------------------------------------------------------------------


class RefundInput(BaseModel):
    booking_id: str
    user_id: str
    refund_id: str
    refund_amount: int
    currency: str
    full: bool
    reason: str | None = None


class RefundOutcome(BaseModel):
    booking_id: str
    refund_id: str
    points_returned: int = 0
    points_clawed_back: int = 0
    pending_reduced: int = 0
    pending_voided: bool = False
    debt_recorded: int = 0
    notifications: list[Notification] = Field(default_factory=list)


def accrual_workflow_id(booking_id: str) -> str:
    return f"accrual-{booking_id}"


def refund_workflow_id(booking_id: str, refund_id: str) -> str:
    return f"refund-{booking_id}-{refund_id}"
