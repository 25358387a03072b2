"""The worker's Stripe client (aiohttp under the official SDK) talks to localstripe and closes
its connections when the worker stops."""

from __future__ import annotations

import pytest
import stripe

from loyalty.core.settings import Settings
from loyalty.core.stripe_client import async_stripe_client


async def test_async_client_creates_and_reads_a_payment_intent_then_closes(
    settings: Settings,
) -> None:
    async with async_stripe_client(settings) as client:
        created = await client.v1.payment_intents.create_async(
            {"amount": 70_000, "currency": "vnd", "metadata": {"booking_id": "bk-aiohttp"}}
        )
        read = await client.v1.payment_intents.retrieve_async(created.id)
        assert (read.id, read.amount, read.metadata["booking_id"]) == (
            created.id,
            70_000,
            "bk-aiohttp",
        )
        with pytest.raises(stripe.InvalidRequestError):
            await client.v1.payment_intents.retrieve_async("pi_does_not_exist")
    # Closed: a call after the end fails without reaching localstripe.
    with pytest.raises(stripe.APIConnectionError, match="RuntimeError"):
        await client.v1.payment_intents.retrieve_async(created.id)
