"""Stripe webhook events seen, by event id (table stripe_events, migration 0002).

The webhook endpoint records the event and signals the saga inside one transaction: a concurrent
redelivery of the same event waits on the row's unique key and then sees it as a duplicate; when
signalling fails, the transaction rolls back and Stripe's next delivery tries again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


MAX_TEXT = 255  # far above Stripe's ids (evt_..., pi_...) and our workflow and run ids


@dataclass(frozen=True)
class EventFacts:
    """What the webhook needs of a signed Stripe event. Read defensively: the signature proves
    who sent the body, not that each field has the shape Stripe documents, and a value that
    PostgreSQL cannot store (NUL, a nested object) must not turn into a failed INSERT."""

    event_id: str
    event_type: str
    payment_intent_id: str | None = None
    workflow_id: str | None = None
    run_id: str | None = None
    reason: str | None = None


def read_event(raw: object) -> EventFacts | None:
    """The facts of an event, or None when the body is not a Stripe event (no usable id or
    type). A PaymentIntent's fields that are missing or malformed read as None: the event is
    then acknowledged and ignored, as any event about no checkout is."""
    if not isinstance(raw, dict):
        return None
    event_id, event_type = _text(raw.get("id")), _text(raw.get("type"))
    if event_id is None or event_type is None:
        return None
    obj = _mapping(_mapping(raw.get("data")).get("object"))
    if obj.get("object") != "payment_intent":
        return EventFacts(event_id, event_type)
    metadata = _mapping(obj.get("metadata"))
    error = _mapping(obj.get("last_payment_error"))
    return EventFacts(
        event_id,
        event_type,
        payment_intent_id=_text(obj.get("id")),
        workflow_id=_text(metadata.get("workflow_id")),
        run_id=_text(metadata.get("run_id")),
        reason=_text(error.get("message"), truncate_to=500),
    )


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: object, *, truncate_to: int | None = None) -> str | None:
    """A usable string: an id must fit MAX_TEXT whole; free text is cut to `truncate_to`."""
    if not isinstance(value, str) or not value or "\x00" in value:
        return None
    if truncate_to is not None:
        return value[:truncate_to]
    return value if len(value) <= MAX_TEXT else None


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
