"""What the checkout endpoints take and the Stripe webhook answers. The redeem and decision
answers are the saga's own contracts (RedemptionHold, RedemptionState in contracts)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from loyalty.core.fields import MAX_AMOUNT_MINOR, MAX_POINTS, BookingId
from loyalty.core.text import NO_NUL

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
    # Stored in the ledger's description of the capture or release: PostgreSQL text holds no NUL.
    reason: str | None = Field(default=None, max_length=500, pattern=NO_NUL)


class WebhookAck(BaseModel):
    received: bool = True
    duplicate: bool = False
    outcome: WebhookOutcome | None = None


# --- the checkout quote (POST /wallets/{userId}/redemption-quote) ------------------------------

# What stops the slider: the points available, the tier's cap on this order, the order's worth.
QuoteBound = Literal["balance", "tier_cap", "order_amount"]


class RedemptionQuoteBody(BaseModel):
    """An order to quote: its amount and currency, and optionally the points to apply (the
    most that may be applied when left out). Bounded as a redeem is."""

    model_config = ConfigDict(extra="forbid")

    order_amount: int = Field(gt=0, le=MAX_AMOUNT_MINOR, strict=True, description="minor units")
    currency: str = Field(min_length=3, max_length=3, examples=["VND"])
    points: int | None = Field(
        default=None, gt=0, le=MAX_POINTS, strict=True, description="points to apply"
    )


class RedemptionQuote(BaseModel):
    """How many points the wallet may apply to the order, why no more, and what they are worth.
    Nothing is held: a redeem decides."""

    user_id: str
    tier: str
    currency: str
    order_amount: int = Field(description="minor units")
    balance: int
    held: int = Field(description="reserved by open checkouts")
    available: int = Field(description="balance minus held")
    tier_cap_points: int = Field(
        description="the most the tier allows on this order (never more than the order is worth)"
    )
    max_points: int = Field(description="the most points that may be applied to this order")
    bound: QuoteBound = Field(
        description="what sets max_points: balance (available points), tier_cap, order_amount"
    )
    points: int = Field(description="the points quoted: the ones asked for, else max_points")
    discount_minor: int = Field(description="what those points take off the order")
    amount_to_charge_minor: int = Field(description="what is left to pay")
