"""The Temporal contracts of the checkout saga (workflows.redemption): its id, start argument,
update, signals and query answer, and its activities' commands and answers.

Pydantic only (no I/O): the workflow imports this module through `imports_passed_through`.
Saved histories hold these models as JSON (tests/redemption/histories): renaming or removing a
field breaks the replay of running sagas; add fields with defaults."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from loyalty.redemption.schemas import RedeemBody

Status = Literal["pending", "held", "capturing", "captured", "releasing", "released", "rejected"]
Decision = Literal["payment_succeeded", "confirmed", "payment_failed", "payment_canceled",
                   "released", "expired"]  # fmt: skip


# What cancel_payment_intent answers when Stripe does not know the PaymentIntent (resource_missing:
# another account, or a test server that lost its data): there is nothing left to cancel.
PAYMENT_INTENT_MISSING = "missing"


def workflow_id_for(booking_id: str) -> str:
    """One saga per booking: a repeated redeem meets the saga it started. A checkout that ended
    without a capture may start again: a new run of the same workflow id (its run id tells the
    attempts apart)."""
    return f"redemption-{booking_id}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    # 3: a failed payment attempt is counted and the saga keeps waiting; a refused redeem
    #    completes the run as `rejected` (2 fails it); the PaymentIntent's set-up is bounded.
    # Clients start settings.redemption_saga_version (3 unless set lower for a rolling upgrade).
    saga_version: int = Field(default=1, ge=1, le=3)
    # How long after the hold's expiry the saga may go on trying to cancel the PaymentIntent;
    # then it raises the CheckoutAlert and settles the points anyway (every saga ends).
    payment_grace_seconds: int = Field(default=120, gt=0)
    # The run this one follows, when the booking's previous checkout ended without a capture.
    previous_run_id: str | None = None


# --- activities --------------------------------------------------------------------------------


class PlaceHold(_Model):
    """The hold activity's argument."""

    request: RedeemRequest
    workflow_id: str
    hold_id: str
    idempotency_key: str
    expires_at: datetime
    # A checkout that follows an earlier run of the booking: refused if that booking's points
    # were captured meanwhile (two runs never hold at once, so this is checked once, here).
    restarted: bool = False


class HoldPlaced(_Model):
    """The hold activity's answer."""

    hold_id: str
    points: int
    discount_minor: int
    amount_to_charge_minor: int
    expires_at: datetime
    tier: str


class SettleHold(_Model):
    """The capture or release activity's argument."""

    hold_id: str
    booking_id: str
    payment_intent_id: str | None
    discount_minor: int
    currency: str
    reason: str


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


class CancelPaymentIntent(_Model):
    payment_intent_id: str
    booking_id: str
    reason: str


# --- the update's answer, the signals, the query ---------------------------------------------


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
    client_secret: str | None = Field(
        description="lets the customer's browser pay the PaymentIntent: only in the redeem "
        "answer (null in the status and the saga's result)"
    )
    request: RedeemRequest
    run_id: str | None = None  # the saga run that holds (a booking's later checkouts are new runs)


class PaymentEvent(_Model):
    """A Stripe webhook's news about the PaymentIntent (signal argument)."""

    payment_intent_id: str
    event_id: str | None = None
    reason: str | None = None


class BookingDecision(_Model):
    """The booking service confirms or releases the checkout (signal argument)."""

    reason: str | None = None


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
    # Declined attempts on the PaymentIntent so far (saga version 3 keeps waiting after each).
    payment_failures: int = 0
    last_payment_error: str | None = None
    # Set when the payment side could not be settled (also the CheckoutAlert search attribute):
    # payment_intent_missing, payment_unsettled or settlement_failed, and what happened.
    alert: str | None = None
    alert_message: str | None = None
    run_id: str | None = None
