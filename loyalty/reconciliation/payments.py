"""Stripe's side of the reconciliation: the PaymentIntents a batch of checkouts names, read
with the official SDK (a few at a time). A PaymentIntent Stripe does not know comes back as
`missing`; any other error (Stripe away, a bad key) is raised, and the activity retries."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import stripe

from loyalty.reconciliation.rules import IntentFacts

# Reads of one batch in flight at once: well below Stripe's rate limit (100 reads per second).
CONCURRENCY = 8
_MISSING = "resource_missing"


async def payment_intents(
    client: stripe.StripeClient, ids: Iterable[str]
) -> dict[str, IntentFacts]:
    """Each PaymentIntent by id, as Stripe reports it now."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(intent_id: str) -> IntentFacts:
        async with gate:
            try:
                intent = await client.v1.payment_intents.retrieve_async(intent_id)
            except stripe.InvalidRequestError as err:
                if err.code == _MISSING or err.http_status == 404:
                    return IntentFacts(intent_id, missing=True)
                raise
        return IntentFacts(
            payment_intent_id=intent_id,
            status=intent.status,
            amount=intent.amount,
            # localstripe leaves it out; Stripe always sends it.
            amount_received=getattr(intent, "amount_received", None),
            currency=intent.currency,
        )

    unique = sorted(set(ids))
    found = await asyncio.gather(*(one(i) for i in unique))
    return dict(zip(unique, found, strict=True))
