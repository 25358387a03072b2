"""Booking event intake, the part that needs no Temporal: which workflow an event belongs to,
what it asks of it, and the claim of its event id.

Redelivery does nothing new: the event id is claimed in `booking_events` (same id and body:
a duplicate; same id, other body: a conflict), in the request's transaction, which commits only
after the workflow has the event (api.temporal.booking_events): if Temporal is down nothing is
claimed and the redelivery acts."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.core.errors import IdempotencyConflict, ValidationFailed
from loyalty.core.hashing import request_hash
from loyalty.earning.contracts import RefundInput, accrual_workflow_id, refund_workflow_id
from loyalty.earning.events import (
    CANCEL_REFUND_ID,
    BookingCancelled,
    BookingEvent,
    BookingRefunded,
)

_CLAIM = text(
    "INSERT INTO booking_events (event_id, type, booking_id, user_id, request_hash, "
    "workflow_id) VALUES (:id, :type, :b, :u, :hash, :wf) "
    "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
)
_CLAIMED = text("SELECT request_hash FROM booking_events WHERE event_id = :id")


def check_currency(event: BookingEvent, currency: str) -> None:
    """Amounts are in the service's one currency."""
    given = getattr(event, "currency", None)
    if given is not None and given != currency:
        raise ValidationFailed(f"amounts must be in {currency}", currency=given, expected=currency)


def workflow_id_for(event: BookingEvent) -> str:
    """Refunds and cancellations go to a refund workflow of their own; the rest to the
    booking's accrual."""
    if isinstance(event, BookingRefunded):
        return refund_workflow_id(event.booking_id, event.refund_id)
    if isinstance(event, BookingCancelled):
        return refund_workflow_id(event.booking_id, CANCEL_REFUND_ID)
    return accrual_workflow_id(event.booking_id)


def refund_of(event: BookingRefunded | BookingCancelled, currency: str) -> RefundInput:
    """The refund an event asks for: a cancellation is the full refund `cancel`."""
    if isinstance(event, BookingCancelled):
        return RefundInput(
            booking_id=event.booking_id,
            user_id=event.user_id,
            refund_id=CANCEL_REFUND_ID,
            refund_amount=0,
            currency=currency,
            full=True,
            reason=event.reason,
        )
    return RefundInput(
        booking_id=event.booking_id,
        user_id=event.user_id,
        refund_id=event.refund_id,
        refund_amount=event.refund_amount,
        currency=event.currency,
        full=event.full,
    )


async def claim(conn: AsyncConnection, event: BookingEvent, workflow_id: str) -> bool:
    """Record the event id; False when it was already received with the same body."""
    digest = request_hash(event.model_dump(mode="json"))
    params = {
        "id": event.event_id,
        "type": event.type,
        "b": event.booking_id,
        "u": event.user_id,
        "hash": digest,
        "wf": workflow_id,
    }
    if (await conn.execute(_CLAIM, params)).first() is not None:
        return True
    stored = (await conn.execute(_CLAIMED, {"id": event.event_id})).scalar_one()
    if stored != digest:
        raise IdempotencyConflict(
            f"event {event.event_id} was already received with a different body",
            event_id=event.event_id,
        )
    return False
