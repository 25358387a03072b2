"""Checkout redemption: the request and answer models, and the plain rules (validation, the tier's
redemption cap, discount and remainder).

Sandbox-safe (pydantic and the error family only): the workflow imports this module through
`imports_passed_through`, the activities and the API import it directly."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from loyalty.core.errors import LoyaltyError, ValidationFailed

MAX_AMOUNT = 10**15  # minor units; far above any real order, rejects overflow-sized input
BOOKING_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"

Status = Literal["pending", "held", "capturing", "captured", "releasing", "released", "rejected"]
Decision = Literal["payment_succeeded", "confirmed", "payment_failed", "payment_canceled",
                   "released", "expired"]  # fmt: skip
CAPTURING_DECISIONS: frozenset[str] = frozenset({"payment_succeeded", "confirmed"})


class RedemptionCapExceeded(LoyaltyError):
    code = "redemption_cap_exceeded"
    status_code = 422


class CurrencyNotSupported(LoyaltyError):
    code = "currency_not_supported"
    status_code = 422


class RedemptionConflict(LoyaltyError):
    """The booking already has a redemption with a different request."""

    code = "redemption_conflict"
    status_code = 409


class PaymentRejected(LoyaltyError):
    """The payment provider refused to set up the charge of the remainder."""

    code = "payment_rejected"
    status_code = 422


class RedemptionRejected(LoyaltyError):
    """The saga ended without a hold (its redeem request was refused)."""

    code = "redemption_rejected"
    status_code = 422


# --- models ----------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RedeemBody(_Model):
    """What the booking service sends to apply points to a checkout."""

    booking_id: str = Field(pattern=BOOKING_ID_PATTERN, examples=["bk-2026-0001"])
    order_amount: int = Field(gt=0, le=MAX_AMOUNT, strict=True, description="minor units")
    currency: str = Field(min_length=3, max_length=3, examples=["VND"])
    points: int = Field(gt=0, le=10**12, strict=True, description="points to apply")


class RedeemRequest(RedeemBody):
    """A redeem request with the wallet it spends from (the workflow update's argument)."""

    user_id: str = Field(min_length=1, max_length=128)


class RedemptionInput(_Model):
    """The workflow's start argument. Settings are passed in, so the workflow reads no config."""

    user_id: str
    booking_id: str
    currency: str
    hold_ttl_seconds: int = Field(gt=0)
    # The saga's shape, fixed at start and kept in its history, so a saga replays the shape it
    # began with (no workflow.patched(): its marker costs a search-attribute upsert per saga).
    # 1: search attributes upserted at start, capture / release as remote activities.
    # 2: attributes only from the start request, capture / release as local activities.
    # Clients start settings.redemption_saga_version (2 unless set to 1 for a rolling upgrade).
    saga_version: int = Field(default=1, ge=1, le=2)


class PlaceHold(_Model):
    """The hold activity's argument."""

    request: RedeemRequest
    workflow_id: str
    hold_id: str
    idempotency_key: str
    expires_at: datetime


class CancelPaymentIntent(_Model):
    payment_intent_id: str
    booking_id: str
    reason: str


class HoldPlaced(_Model):
    """The hold activity's answer."""

    hold_id: str
    points: int
    discount_minor: int
    amount_to_charge_minor: int
    expires_at: datetime
    tier: str


class PaymentIntentCreate(_Model):
    booking_id: str
    user_id: str
    workflow_id: str
    run_id: str
    amount_minor: int
    currency: str
    hold_id: str


class PaymentIntentRef(_Model):
    payment_intent_id: str
    client_secret: str | None
    status: str


class RedemptionHold(_Model):
    """The redeem answer: what the booking service needs to finish the checkout."""

    workflow_id: str
    booking_id: str
    user_id: str
    hold_id: str
    points_held: int
    discount_minor: int
    amount_to_charge_minor: int
    currency: str
    hold_expires_at: datetime
    payment_intent_id: str | None
    client_secret: str | None
    request: RedeemRequest


class PaymentEvent(_Model):
    """A Stripe webhook's news about the PaymentIntent (signal argument)."""

    payment_intent_id: str
    event_id: str | None = None
    reason: str | None = None


class BookingDecision(_Model):
    """The booking service confirms or releases the checkout (signal argument)."""

    reason: str | None = None


class SettleHold(_Model):
    hold_id: str
    booking_id: str
    payment_intent_id: str | None
    discount_minor: int
    currency: str
    reason: str


class RedemptionState(_Model):
    """The `status` query's answer, and (when the saga ends) its result."""

    workflow_id: str
    booking_id: str
    user_id: str
    status: Status
    hold: RedemptionHold | None = None
    decision: Decision | None = None
    payment_status: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    waiting_for: str | None = None


# --- rules -----------------------------------------------------------------------------------


def validate_request(request: RedeemRequest, *, currency: str) -> None:
    """Checks that need no database: raise a LoyaltyError when the request can never succeed."""
    if request.currency.upper() != currency.upper():
        raise CurrencyNotSupported(
            f"this service redeems in {currency}, not {request.currency}",
            currency=request.currency,
            supported=currency,
        )
    if request.order_amount <= 0:
        raise ValidationFailed("order amount must be positive", order_amount=request.order_amount)
    if request.points <= 0:
        raise ValidationFailed("points must be positive", points=request.points)


def max_redeemable_points(
    order_amount: int, *, cap_pct: int | None, cap_points: int | None, point_value_minor: int
) -> int:
    """The most points one booking may use: the tier's percent-of-order and absolute caps, and
    never more than the order is worth. Rounds down (a discount never exceeds the cap)."""
    limit = order_amount // point_value_minor
    if cap_pct is not None:
        limit = min(limit, order_amount * cap_pct // 100 // point_value_minor)
    if cap_points is not None:
        limit = min(limit, cap_points)
    return max(limit, 0)


def discount_for(points: int, *, point_value_minor: int) -> int:
    return points * point_value_minor


def plan_hold(
    request: RedeemRequest,
    *,
    tier: str,
    cap_pct: int | None,
    cap_points: int | None,
    point_value_minor: int,
) -> tuple[int, int]:
    """(discount, amount left to charge) for the request, or RedemptionCapExceeded."""
    limit = max_redeemable_points(
        request.order_amount,
        cap_pct=cap_pct,
        cap_points=cap_points,
        point_value_minor=point_value_minor,
    )
    if request.points > limit:
        raise RedemptionCapExceeded(
            f"tier {tier} may redeem at most {limit} points on this booking",
            tier=tier,
            max_points=limit,
            requested=request.points,
        )
    discount = discount_for(request.points, point_value_minor=point_value_minor)
    return discount, request.order_amount - discount


def same_request(a: RedeemRequest, b: RedeemRequest) -> bool:
    """Whether a repeated redeem asks for the same thing (currency compared case-blind)."""
    return a.model_copy(update={"currency": a.currency.upper()}) == b.model_copy(
        update={"currency": b.currency.upper()}
    )


def update_id_for(request: RedeemRequest) -> str:
    """The redeem update's id: the booking plus a fingerprint of the request, so an identical
    retry attaches to the first update's stored outcome while a corrected request after a
    refusal gets a fresh one (Temporal answers a reused update id from the closed run)."""
    canonical = json.dumps(
        request.model_copy(update={"currency": request.currency.upper()}).model_dump(),
        sort_keys=True,
        separators=(",", ":"),
    )
    return f"{request.booking_id}:{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"
