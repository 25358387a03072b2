"""Stripe webhook events seen, by event id (table stripe_events, migration 0002).

The webhook endpoint records the event and signals the saga inside one transaction: a concurrent
redelivery of the same event waits on the row's unique key and then sees it as a duplicate; when
signalling fails, the transaction rolls back and Stripe's next delivery tries again."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.redemption.schemas import WebhookOutcome

# The events the webhook endpoint acts on (api/routers/webhooks.py). Subscribe the endpoint to
# these only: in Stripe, the webhook endpoint's events; localstripe takes them when its webhook is
# configured (devstack.localstripe_webhook_fields). Anything else is acknowledged as ignored, but
# Stripe sends more for every checkout (payment_intent.created, charge.succeeded, ...), each a
# delivery, a request and a database row for nothing.
WEBHOOK_EVENTS = (
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
)


_CLAIM = text(
    "INSERT INTO stripe_events (event_id, type, payment_intent_id, workflow_id, outcome) "
    "VALUES (:e, :t, :pi, :w, 'ignored') ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
)
_SET_OUTCOME = text("UPDATE stripe_events SET outcome = :o WHERE event_id = :e")


async def claim(
    conn: AsyncConnection,
    *,
    event_id: str,
    event_type: str,
    payment_intent_id: str | None,
    workflow_id: str | None,
) -> bool:
    """Record the event; False when it was already recorded (a redelivery: do nothing)."""
    params = {"e": event_id, "t": event_type, "pi": payment_intent_id, "w": workflow_id}
    return (await conn.execute(_CLAIM, params)).first() is not None


async def set_outcome(conn: AsyncConnection, event_id: str, outcome: WebhookOutcome) -> None:
    await conn.execute(_SET_OUTCOME, {"o": outcome, "e": event_id})


async def outcomes(conn: AsyncConnection, payment_intent_id: str) -> list[tuple[str, str, str]]:
    """(event id, type, outcome) of the events seen for a PaymentIntent, oldest first."""
    rows = await conn.execute(
        text(
            "SELECT event_id, type, outcome FROM stripe_events WHERE payment_intent_id = :pi "
            "ORDER BY received_at, event_id"
        ),
        {"pi": payment_intent_id},
    )
    return [(r[0], r[1], r[2]) for r in rows]
