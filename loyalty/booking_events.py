"""Booking events from the booking platform, and the messages of the accrual and refund
workflows. Pydantic only (no I/O): safe to import from workflows.

Events (POST /booking-events, service scope), each with an `event_id` unique per event:
- `booking_confirmed`: the booking's facts (product type, category, end of stay); with
  `amount_paid` it also means "paid" (payments made outside Stripe) and earns.
- `payment_succeeded`: the money actually paid for the booking (never the points part); earns.
- `booking_refunded`: money given back (`refund_amount`, or `full`), one event per `refund_id`.
- `booking_cancelled`: the booking is off; treated as a full refund (refund id `cancel`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, StringConstraints

from loyalty.notifications import Notification

ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[!-~]+$")]
# Booking ids end up in workflow ids and idempotency keys: keep them plain.
BookingId = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[!-~]+$")]
MAX_AMOUNT_MINOR = 10**15
CANCEL_REFUND_ID = "cancel"


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: ExternalId
    booking_id: BookingId
    user_id: ExternalId


class _Paid(_Event):
    amount_paid: StrictInt = Field(ge=0, le=MAX_AMOUNT_MINOR, description="money paid, minor units")
    currency: CurrencyCode
    paid_at: AwareDatetime | None = Field(
        default=None, description="when it was paid (campaign windows); default: received"
    )
    product_type: Tag | None = None
    category: Tag | None = None
    stay_ends_at: AwareDatetime | None = Field(
        default=None, description="points stay pending until then (end of stay)"
    )


class BookingConfirmed(_Event):
    type: Literal["booking_confirmed"]
    payment_id: ExternalId | None = None
    amount_paid: StrictInt | None = Field(
        default=None, ge=0, le=MAX_AMOUNT_MINOR, description="set when paid outside Stripe"
    )
    currency: CurrencyCode | None = None
    paid_at: AwareDatetime | None = None
    product_type: Tag | None = None
    category: Tag | None = None
    stay_ends_at: AwareDatetime | None = None


class PaymentSucceeded(_Paid):
    type: Literal["payment_succeeded"]
    payment_id: ExternalId


class BookingRefunded(_Event):
    type: Literal["booking_refunded"]
    refund_id: Annotated[
        str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    ]
    refund_amount: StrictInt = Field(ge=0, le=MAX_AMOUNT_MINOR, description="money refunded now")
    currency: CurrencyCode
    full: bool = Field(default=False, description="the whole booking is refunded")


class BookingCancelled(_Event):
    type: Literal["booking_cancelled"]
    reason: Annotated[str, StringConstraints(max_length=500)] | None = None


BookingEvent = Annotated[
    BookingConfirmed | PaymentSucceeded | BookingRefunded | BookingCancelled,
    Field(discriminator="type"),
]


class BookingEventIn(BaseModel):
    """The intake body: one event."""

    model_config = ConfigDict(extra="forbid")

    event: BookingEvent


class BookingEventAck(BaseModel):
    event_id: str
    duplicate: bool = Field(description="true when this event id was already received")
    workflow_id: str = Field(description="the workflow that handles it")
    outcome: Literal["accepted", "already_finished", "duplicate"] = Field(
        description="accepted: handed to the workflow; already_finished: the workflow for it "
        "has ended, nothing new happens; duplicate: this event id was seen before"
    )


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
