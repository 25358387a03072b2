"""What the checkout endpoints take and the Stripe webhook answers. The redeem and decision
answers are the saga's own contracts (RedemptionHold, RedemptionState in contracts)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from loyalty.core.fields import MAX_AMOUNT_MINOR, MAX_POINTS, BookingId

# What the webhook did with an event; also kept per event (loyalty.redemption.stripe_events).
WebhookOutcome = Literal["signalled", "saga_ended", "unknown_payment_intent", "ignored"]


class RedeemBody(BaseModel):
    """What the booking service sends to apply points to a checkout."""

    # Frozen: the saga compares a repeated request with the one it answered.
    model_config = ConfigDict(extra="forbid", frozen=True)

    booking_id: BookingId = Field(examples=["bk-2026-0001"])
    order_amount: int = Field(gt=0, le=MAX_AMOUNT_MINOR, strict=True, description="minor units")
    currency: str = Field(min_length=3, max_length=3, examples=["VND"])
    points: int = Field(gt=0, le=MAX_POINTS, strict=True, description="points to apply")


class DecisionBody(BaseModel):
    """The booking service's confirm or release of a checkout."""

    model_config = ConfigDict(extra="forbid")

    booking_id: BookingId
    reason: str | None = Field(default=None, max_length=500)


class WebhookAck(BaseModel):
    received: bool = True
    duplicate: bool = False
    outcome: WebhookOutcome | None = None
