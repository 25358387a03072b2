"""The worker's Stripe client (aiohttp under the official SDK) talks to localstripe and closes
its connections when the worker stops; localstripe (devstack.localstripe_server) answers a
declined card and an unknown PaymentIntent as Stripe does."""

from __future__ import annotations

import pytest
import stripe

from loyalty.core.settings import Settings
from loyalty.core.stripe_client import async_stripe_client
from tests.redemption.helpers import DECLINED_CARD, GOOD_CARD


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


async def test_localstripe_takes_another_card_after_a_decline_as_stripe_does(
    stripe_client: stripe.StripeClient,
) -> None:
    """Through the official SDK: a declined charge leaves the PaymentIntent in
    requires_payment_method, and a confirm with another card on it succeeds."""
    intent = await stripe_client.v1.payment_intents.create_async(
        {"amount": 70_000, "currency": "vnd"}
    )
    declined = await _card(stripe_client, DECLINED_CARD)
    with pytest.raises(stripe.CardError) as refusal:
        await stripe_client.v1.payment_intents.confirm_async(
            intent.id, {"payment_method": declined}
        )
    assert refusal.value.code == "card_declined"
    after = await stripe_client.v1.payment_intents.retrieve_async(intent.id)
    assert after.status == "requires_payment_method"
    assert after.last_payment_error and after.last_payment_error.code == "card_declined"
    # Without a new card, a confirm is refused as before.
    with pytest.raises(stripe.InvalidRequestError):
        await stripe_client.v1.payment_intents.confirm_async(intent.id)

    paid = await stripe_client.v1.payment_intents.confirm_async(
        intent.id, {"payment_method": await _card(stripe_client, GOOD_CARD)}
    )
    assert (paid.status, paid.amount) == ("succeeded", 70_000)
    assert paid.last_payment_error is None
    # Paid: no further card is taken.
    with pytest.raises(stripe.InvalidRequestError):
        await stripe_client.v1.payment_intents.confirm_async(
            intent.id, {"payment_method": await _card(stripe_client, GOOD_CARD)}
        )
    # A cancelled PaymentIntent takes no card either.
    other = await stripe_client.v1.payment_intents.create_async({"amount": 500, "currency": "vnd"})
    await stripe_client.v1.payment_intents.cancel_async(other.id)
    with pytest.raises(stripe.InvalidRequestError):
        await stripe_client.v1.payment_intents.confirm_async(
            other.id, {"payment_method": await _card(stripe_client, GOOD_CARD)}
        )


async def test_an_unknown_payment_intent_is_resource_missing_as_in_stripe(
    stripe_client: stripe.StripeClient,
) -> None:
    for call in (
        stripe_client.v1.payment_intents.retrieve_async,
        stripe_client.v1.payment_intents.cancel_async,
    ):
        with pytest.raises(stripe.InvalidRequestError) as missing:
            await call("pi_nobody_made")
        assert (missing.value.http_status, missing.value.code) == (404, "resource_missing")


async def _card(client: stripe.StripeClient, number: str) -> str:
    method = await client.v1.payment_methods.create_async(
        {
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"},
        }
    )
    return method.id
