"""The Stripe client, made once per process: the official SDK, pointed at localstripe in
development and tests (STRIPE_API_BASE) and at Stripe itself in production."""

from __future__ import annotations

import stripe

from loyalty.settings import DEV_STRIPE_API_KEY, Settings


def make_stripe_client(settings: Settings) -> stripe.StripeClient:
    base = settings.stripe_api_base
    if settings.stripe_api_key is None and base is None and settings.environment != "production":
        # No key and no base: development without the run command; localstripe's default port.
        base = f"http://127.0.0.1:{settings.localstripe_port}"
    return stripe.StripeClient(
        settings.stripe_api_key or DEV_STRIPE_API_KEY,
        base_addresses={"api": base} if base else None,
        max_network_retries=2,
    )
