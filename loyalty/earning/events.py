"""Booking events from the booking platform: the body of POST /booking-events, each with an
`event_id` unique per event. Pydantic only (no I/O): safe to import from workflows.

- `booking_confirmed`: the booking's facts (product type, category, end of stay); with
  `amount_paid` it also means "paid" (payments made outside Stripe) and earns.
- `payment_succeeded`: the money actually paid for the booking (never the points part); earns.
- `booking_refunded`: money given back (`refund_amount`, or `full`), one event per `refund_id`.
- `booking_cancelled`: the booking is off; treated as a full refund (refund id `cancel`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints

from loyalty.core.fields import MAX_AMOUNT_MINOR, BookingId, CurrencyCode, ExternalId, Instant, Tag

CANCEL_REFUND_ID = "cancel"


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: ExternalId
    booking_id: BookingId
    user_id: ExternalId


class _Paid(_Event):
    amount_paid: StrictInt = Field(ge=0, le=MAX_AMOUNT_MINOR, description="money paid, minor units")
    currency: CurrencyCode
    paid_at: Instant | None = Field(
        default=None, description="when it was paid (campaign windows); default: received"
    )
    product_type: Tag | None = None
    category: Tag | None = None
    stay_ends_at: Instant | None = Field(
        default=None, description="points stay pending until then (end of stay)"
    )


class BookingConfirmed(_Event):
    type: Literal["booking_confirmed"]
    payment_id: ExternalId | None = None
    amount_paid: StrictInt | None = Field(
        default=None, ge=0, le=MAX_AMOUNT_MINOR, description="set when paid outside Stripe"
    )
    currency: CurrencyCode | None = None
    paid_at: Instant | None = None
    product_type: Tag | None = None
    category: Tag | None = None
    stay_ends_at: Instant | None = None


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
