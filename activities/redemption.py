"""The checkout saga's side effects: the hold and its capture or release (RedemptionActivities,
one database transaction each over loyalty.redemption.holds), and the PaymentIntent for the
remainder and its cancellation (StripePaymentActivities).

Every write carries an idempotency key derived from the workflow, so a retried activity posts
once and makes one PaymentIntent (Stripe honours the key; localstripe ignores it). Refusals are
final (activities.support): the ledger's, and Stripe's 4xx answers. Network trouble, rate limits
and Stripe's 5xx stay retryable."""

from __future__ import annotations

import stripe
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.support import autocommit, refusals_final, transaction
from loyalty.core.settings import Settings
from loyalty.redemption import holds
from loyalty.redemption.contracts import (
    CancelPaymentIntent,
    HoldPlaced,
    PaymentIntentCreate,
    PaymentIntentRef,
    PlaceHold,
    SettleHold,
)
from loyalty.redemption.errors import PaymentRejected


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
        async with autocommit(self._engine) as conn:
            return await holds.place(conn, command, point_value_minor=self._point_value_minor)

    @activity.defn(name="capture_redemption_hold")
    async def capture(self, command: SettleHold) -> None:
        """Post the held points as spent, with their currency equivalent."""
        async with transaction(self._engine) as conn:
            await holds.capture(conn, command)

    @activity.defn(name="release_redemption_hold")
    async def release(self, command: SettleHold) -> None:
        """Void the hold: the points become available again."""
        async with transaction(self._engine) as conn:
            await holds.release(conn, command)


# A PaymentIntent in one of these states can no longer be cancelled, and never will be.
FINAL_STATUSES = ("canceled", "succeeded")
_STRIPE_REFUSALS = (
    stripe.InvalidRequestError,
    stripe.CardError,
    stripe.AuthenticationError,
    stripe.PermissionError,
)


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
        `canceled`, or `succeeded` when the customer paid before the cancel landed."""
        try:
            # No idempotency key: Stripe would replay a stored refusal to every retry, and a
            # repeated cancel is harmless (it fails, and the status below tells the truth).
            intent = await self._stripe.v1.payment_intents.cancel_async(command.payment_intent_id)
            return str(intent.status)
        except stripe.InvalidRequestError as err:
            intent = await self._stripe.v1.payment_intents.retrieve_async(command.payment_intent_id)
            if intent.status in FINAL_STATUSES:
                return str(intent.status)
            # e.g. `processing`: the outcome is on its way; retry until it can be told. Not a
            # refusal: it stays retryable.
            raise ApplicationError(
                f"PaymentIntent {intent.id} is {intent.status}; cannot cancel yet",
                type="payment_intent_busy",
            ) from err
