"""Stripe's webhook signature, checked in both directions of time.

`stripe.WebhookSignature.verify_header` refuses a signature older than the tolerance, but takes
one timestamped any time in the future, so a captured signing of a forged clock stays valid
for ever. Here a timestamp more than the tolerance ahead of this machine's clock is refused too
(Stripe signs when it sends; a few seconds of clock skew are well inside five minutes)."""

from __future__ import annotations

import time

import stripe

TOLERANCE_SECONDS = stripe.Webhook.DEFAULT_TOLERANCE  # 300


def verify(payload: bytes, header: str | None, secret: str, *, now: float | None = None) -> None:
    """Raise stripe.SignatureVerificationError unless `header` signs `payload` with `secret`
    at a time within TOLERANCE_SECONDS of now, before or after."""
    stripe.WebhookSignature.verify_header(payload, header, secret, TOLERANCE_SECONDS)
    signed_at = _timestamp(header or "")
    if signed_at is None or signed_at > (now if now is not None else time.time()) + (
        TOLERANCE_SECONDS
    ):
        raise stripe.SignatureVerificationError(
            "the signature's timestamp is in the future", header, payload
        )


def _timestamp(header: str) -> int | None:
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            try:
                return int(value)
            except ValueError:
                return None
    return None
