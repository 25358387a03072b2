"""The Stripe webhook's signature is refused outside its time window in both directions: a
replayed old delivery, and one signed with a clock ahead of ours."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
import stripe

from api import stripe_signature

SECRET = "whsec_test_window"
PAYLOAD = json.dumps({"id": "evt_window", "type": "customer.created", "data": {}}).encode()


def _header(stamp: int, secret: str = SECRET, payload: bytes = PAYLOAD) -> str:
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={mac}"


@pytest.mark.parametrize("offset", [-299, 0, 60, 299])
def test_signatures_within_the_window_pass(offset):
    now = time.time()
    stripe_signature.verify(PAYLOAD, _header(int(now) + offset), SECRET, now=now)


@pytest.mark.parametrize("offset", [-3600, -301, 302, 3600])
def test_signatures_outside_the_window_are_refused(offset):
    now = time.time()
    with pytest.raises(stripe.SignatureVerificationError):
        stripe_signature.verify(PAYLOAD, _header(int(now) + offset), SECRET, now=now)


def test_a_wrong_secret_is_refused():
    with pytest.raises(stripe.SignatureVerificationError):
        stripe_signature.verify(PAYLOAD, _header(int(time.time()), "whsec_other"), SECRET)


async def test_the_webhook_refuses_a_delivery_signed_an_hour_ahead(api):
    secret = api.settings.stripe_webhook_secret
    stamp = int(time.time()) + 3600
    headers = {
        "Stripe-Signature": _header(stamp, secret),
        "Content-Type": "application/json",
    }
    answer = await api.http.post("/webhooks/stripe", content=PAYLOAD, headers=headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "invalid_signature"
    now_headers = {**headers, "Stripe-Signature": _header(int(time.time()), secret)}
    accepted = await api.http.post("/webhooks/stripe", content=PAYLOAD, headers=now_headers)
    assert accepted.status_code == 200, accepted.text
