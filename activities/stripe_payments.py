"""Stripe side of the redemption saga: the PaymentIntent for the remainder, and its cancellation.

Requests carry idempotency keys derived from the workflow run, so a retried activity makes one
PaymentIntent (Stripe honours the key; localstripe ignores it). Refusals by Stripe (4xx) are
final; network trouble, rate limits and 5xx are retried by Temporal."""

from __future__ import annotations

import stripe
from temporalio import activity
from temporalio.exceptions import ApplicationError

from loyalty.redemption.rules import CancelPaymentIntent, PaymentIntentCreate, PaymentIntentRef

# A PaymentIntent in one of these states can no longer be cancelled, and never will be.
FINAL_STATUSES = ("canceled", "succeeded")
_REFUSALS = (
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
        except _REFUSALS as err:
            raise ApplicationError(
                f"Stripe refused the PaymentIntent: {err.user_message or err}",
                {"stripe_code": err.code, "http_status": err.http_status},
                type="payment_rejected",
                non_retryable=True,
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
            # e.g. `processing`: the outcome is on its way; retry until it can be told.
            raise ApplicationError(
                f"PaymentIntent {intent.id} is {intent.status}; cannot cancel yet",
                type="payment_intent_busy",
            ) from err
