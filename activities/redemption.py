"""The checkout saga's side effects: the hold and its capture or release (RedemptionActivities,
one database transaction each over loyalty.redemption.holds), and the PaymentIntent for the
remainder and its cancellation (StripePaymentActivities).

Every write carries an idempotency key derived from the workflow, so a retried activity posts
once and makes one PaymentIntent (Stripe honours the key; localstripe ignores it).

Stripe's answers are classified once, here. Final: a card error, an invalid request (a
PaymentIntent Stripe does not know, `resource_missing`, means nothing is left to cancel), and an
authentication or permission error (the key is wrong: no retry fixes that). Retryable, with the
workflow's backoff: rate limits, connection errors and Stripe's 5xx. The ledger's refusals and
data errors are final too (activities.support)."""

from __future__ import annotations

import stripe
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.support import autocommit, refusals_final, transaction
from loyalty.core.settings import Settings
from loyalty.notifications.models import Notification
from loyalty.observability import metrics, tracing
from loyalty.redemption import bookings, holds
from loyalty.redemption.contracts import (
    PAYMENT_INTENT_MISSING,
    CancelPaymentIntent,
    HoldPlaced,
    PaymentIntentCreate,
    PaymentIntentRef,
    PlaceHold,
    SettleHold,
)
from loyalty.redemption.errors import PaymentRejected, RedemptionCaptured


class RedemptionActivities:
    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self._engine = engine
        self._point_value_minor = settings.point_value_minor

    @activity.defn(name="place_redemption_hold")
    async def place_hold(self, command: PlaceHold) -> HoldPlaced:
        """Check the tier's cap for this booking and reserve the points (run as a local
        activity: it is on the checkout's critical path)."""
        # Its one write is the hold's posting; the cap is read before it either way (a tier
        # change racing a checkout may land on either side), so no transaction is needed.
        tracing.annotate(booking_id=command.request.booking_id)
        with metrics.HOLD_LATENCY.time():
            return await self._place_hold(command)

    async def _place_hold(self, command: PlaceHold) -> HoldPlaced:
        async with autocommit(self._engine) as conn:
            booking_id = command.request.booking_id
            # Only a booking's later runs can meet a capture (one run at a time per booking).
            if command.restarted and await bookings.points_captured(conn, booking_id):
                raise RedemptionCaptured(
                    f"booking {booking_id} was already paid with points", booking_id=booking_id
                )
            return await holds.place(conn, command, point_value_minor=self._point_value_minor)

    # Both answer the customer's notification, written to the outbox with the posting; the saga
    # (version 3) sends it. `| None`: runs of older versions recorded no answer (null).
    @activity.defn(name="capture_redemption_hold")
    async def capture(self, command: SettleHold) -> Notification | None:
        """Post the held points as spent, with their currency equivalent."""
        tracing.annotate(booking_id=command.booking_id)
        async with transaction(self._engine) as conn:
            return await holds.capture(conn, command)

    @activity.defn(name="release_redemption_hold")
    async def release(self, command: SettleHold) -> Notification | None:
        """Void the hold: the points become available again."""
        tracing.annotate(booking_id=command.booking_id)
        async with transaction(self._engine) as conn:
            return await holds.release(conn, command)


# A PaymentIntent in one of these states can no longer be cancelled, and never will be.
FINAL_STATUSES = ("canceled", "succeeded")
# Stripe's answers that no retry changes. Everything else the SDK raises (RateLimitError,
# APIConnectionError, APIError for a 5xx) is retried with the workflow's backoff.
_STRIPE_REFUSALS = (
    stripe.InvalidRequestError,
    stripe.CardError,
    stripe.AuthenticationError,
    stripe.PermissionError,
)
_STRIPE_MISSING = "resource_missing"
# The ApplicationError types of a cancel that can never succeed (the workflow raises the
# CheckoutAlert and settles the points).
STRIPE_REFUSED = "stripe_refused"


class StripePaymentActivities:
    def __init__(self, client: stripe.StripeClient) -> None:
        self._stripe = client

    @activity.defn(name="create_payment_intent")
    async def create_payment_intent(self, command: PaymentIntentCreate) -> PaymentIntentRef:
        """Create the PaymentIntent for what the points do not cover (run as a local activity:
        the checkout waits for its client secret)."""
        async with refusals_final():
            try:
                intent = await self._stripe.v1.payment_intents.create_async(
                    {
                        "amount": command.amount_minor,
                        "currency": command.currency.lower(),
                        "metadata": {
                            "workflow_id": command.workflow_id,
                            "booking_id": command.booking_id,
                            "user_id": command.user_id,
                            "hold_id": command.hold_id,
                            "run_id": command.run_id,
                        },
                    },
                    {"idempotency_key": f"redemption:{command.booking_id}:{command.run_id}:pi"},
                )
            except _STRIPE_REFUSALS as err:
                raise PaymentRejected(
                    f"Stripe refused the PaymentIntent: {err.user_message or err}",
                    stripe_code=err.code,
                    http_status=err.http_status,
                ) from err
        return PaymentIntentRef(
            payment_intent_id=intent.id, client_secret=intent.client_secret, status=intent.status
        )

    @activity.defn(name="cancel_payment_intent")
    async def cancel_payment_intent(self, command: CancelPaymentIntent) -> str:
        """Cancel the PaymentIntent so it can no longer be paid. Returns its final status:
        `canceled`; `succeeded` when the customer paid before the cancel landed; `missing`
        (PAYMENT_INTENT_MISSING) when Stripe does not know it, so nothing can charge it."""
        intent_id = command.payment_intent_id
        try:
            # No idempotency key: Stripe would replay a stored refusal to every retry, and a
            # repeated cancel is harmless (it fails, and the status below tells the truth).
            intent = await self._stripe.v1.payment_intents.cancel_async(intent_id)
            return str(intent.status)
        except (stripe.InvalidRequestError, stripe.CardError) as err:
            if err.code == _STRIPE_MISSING:
                return self._missing(intent_id, err)
            refused: stripe.StripeError = err
        except (stripe.AuthenticationError, stripe.PermissionError) as err:
            raise self._refused(intent_id, err) from err
        # The cancel was refused: the PaymentIntent's own status says why.
        try:
            intent = await self._stripe.v1.payment_intents.retrieve_async(intent_id)
        except stripe.InvalidRequestError as err:
            if err.code == _STRIPE_MISSING:
                return self._missing(intent_id, err)
            raise self._refused(intent_id, err) from err
        except (stripe.AuthenticationError, stripe.PermissionError) as err:
            raise self._refused(intent_id, err) from err
        if intent.status in FINAL_STATUSES:
            return str(intent.status)
        if intent.status == "processing":
            # The outcome is on its way: retried (with backoff, until the workflow's deadline)
            # until it can be told. Not a refusal: it stays retryable.
            raise ApplicationError(
                f"PaymentIntent {intent.id} is processing; cannot cancel yet",
                type="payment_intent_busy",
            ) from refused
        # Cancellable by its status, yet refused: the same request would be refused again.
        raise self._refused(intent_id, refused)

    @staticmethod
    def _missing(intent_id: str, err: stripe.StripeError) -> str:
        activity.logger.warning("Stripe does not know PaymentIntent %s: %s", intent_id, err)
        return PAYMENT_INTENT_MISSING

    @staticmethod
    def _refused(intent_id: str, err: stripe.StripeError) -> ApplicationError:
        return ApplicationError(
            f"Stripe refused to cancel PaymentIntent {intent_id}: {err.user_message or err}",
            {"stripe_code": err.code, "http_status": err.http_status},
            type=STRIPE_REFUSED,
            non_retryable=True,
        )
