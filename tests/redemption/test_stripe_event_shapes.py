"""A validly signed webhook whose event does not have the shape Stripe documents is answered,
never a 500: unusable ids make it "not a Stripe event" (400), malformed PaymentIntent fields make
it an event about no checkout (acknowledged)."""

from __future__ import annotations

import json
import uuid

import pytest

from loyalty.redemption.stripe_events import EventFacts, read_event
from tests.redemption.helpers import signed


def _intent(**fields: object) -> dict[str, object]:
    return {"object": "payment_intent", "id": "pi_1", **fields}


def _event(obj: object, **fields: object) -> dict[str, object]:
    return {"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": obj}, **fields}


@pytest.mark.parametrize(
    ("raw", "facts"),
    [
        ([1, 2], None),
        ({"id": 7, "type": "x"}, None),
        ({"id": "evt\x00", "type": "x"}, None),
        ({"id": "e" * 256, "type": "x"}, None),
        ({"id": "evt_1", "type": {"a": 1}}, None),
        ({"id": "evt_1", "type": "x", "data": [1]}, EventFacts("evt_1", "x")),
        (_event("not an object"), EventFacts("evt_1", "payment_intent.succeeded")),
        (
            _event(_intent(metadata={"workflow_id": {"nested": True}, "run_id": ["r"]})),
            EventFacts("evt_1", "payment_intent.succeeded", payment_intent_id="pi_1"),
        ),
        (
            _event(_intent(metadata="redemption-x", last_payment_error="declined")),
            EventFacts("evt_1", "payment_intent.succeeded", payment_intent_id="pi_1"),
        ),
        (
            _event(
                _intent(
                    metadata={"workflow_id": "redemption-bk-1", "run_id": "run-1"},
                    last_payment_error={"message": "m" * 900},
                )
            ),
            EventFacts(
                "evt_1",
                "payment_intent.succeeded",
                payment_intent_id="pi_1",
                workflow_id="redemption-bk-1",
                run_id="run-1",
                reason="m" * 500,
            ),
        ),
    ],
)
def test_events_are_read_defensively(raw, facts):
    assert read_event(raw) == facts


@pytest.mark.parametrize(
    "obj",
    [
        _intent(metadata={"workflow_id": {"nested": True}}),
        _intent(id={"x": 1}, metadata={"workflow_id": "redemption-x"}),
        _intent(metadata={"workflow_id": "redemption-\x00"}),
        [1, 2, 3],
    ],
)
async def test_malformed_but_signed_events_are_acknowledged(api, obj):
    event = {**_event(obj), "id": f"evt_shape_{uuid.uuid4().hex}"}
    payload = json.dumps(event).encode()
    answer = await api.http.post(
        "/webhooks/stripe",
        content=payload,
        headers=signed(payload, api.settings.stripe_webhook_secret),
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] in ("ignored", "unknown_payment_intent")
