"""Booking event intake: claim the event id, then hand the event to its workflow.

- booking confirmed, payment succeeded: signal-with-start `accrual-{booking_id}`;
- booking refunded: start `refund-{booking_id}-{refund_id}`;
- booking cancelled: start `refund-{booking_id}-cancel` (a full refund) and tell the accrual,
  which ends without earning if it is still waiting for the payment.

Redelivery does nothing new, three ways: the event id is claimed in `booking_events` (same id
and body: answered as a duplicate; same id, other body: 409), the workflow ids are business keys
(a running workflow is signalled, never started twice), and a finished workflow is never
started again (id reuse policy REJECT_DUPLICATE): a late payment for a booking whose accrual
ended, or a refund already processed, is acknowledged and ignored.

The claim is written in the request's transaction, which commits only after Temporal accepted
the event: if Temporal is down the request fails (503) and the redelivery acts."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from loyalty.booking_events import (
    CANCEL_REFUND_ID,
    AccrualInput,
    AccrualNews,
    BookingCancelled,
    BookingEventAck,
    BookingRefunded,
    RefundInput,
    accrual_workflow_id,
    refund_workflow_id,
)
from loyalty.booking_events import BookingEvent as AnyBookingEvent
from loyalty.core import search_attributes as sa
from loyalty.core.errors import IdempotencyConflict, ValidationFailed
from loyalty.core.settings import Settings
from loyalty.ledger import request_hash
from workflows.accrual import AccrualWorkflow
from workflows.refund import RefundWorkflow


def workflow_id_for(event: AnyBookingEvent) -> str:
    if isinstance(event, BookingRefunded):
        return refund_workflow_id(event.booking_id, event.refund_id)
    if isinstance(event, BookingCancelled):
        return refund_workflow_id(event.booking_id, CANCEL_REFUND_ID)
    return accrual_workflow_id(event.booking_id)


async def claim(conn: AsyncConnection, event: AnyBookingEvent, workflow_id: str) -> bool:
    """Record the event id; False when it was already received with the same body."""
    digest = request_hash(event.model_dump(mode="json"))
    inserted = (
        await conn.execute(
            text(
                "INSERT INTO booking_events (event_id, type, booking_id, user_id, request_hash, "
                "workflow_id) VALUES (:id, :type, :b, :u, :hash, :wf) "
                "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
            ),
            {
                "id": event.event_id,
                "type": event.type,
                "b": event.booking_id,
                "u": event.user_id,
                "hash": digest,
                "wf": workflow_id,
            },
        )
    ).first()
    if inserted is not None:
        return True
    stored = (
        await conn.execute(
            text("SELECT request_hash FROM booking_events WHERE event_id = :id"),
            {"id": event.event_id},
        )
    ).scalar_one()
    if stored != digest:
        raise IdempotencyConflict(
            f"event {event.event_id} was already received with a different body",
            event_id=event.event_id,
        )
    return False


def _search_attributes(event: AnyBookingEvent) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(sa.LOYALTY_USER_ID, event.user_id),
            SearchAttributePair(sa.BOOKING_ID, event.booking_id),
        ]
    )


async def _to_accrual(
    client: Client, settings: Settings, event: AnyBookingEvent, news: AccrualNews
) -> bool:
    """Signal-with-start the booking's accrual; False when it has already ended."""
    try:
        await client.start_workflow(
            AccrualWorkflow.run,
            AccrualInput(
                booking_id=event.booking_id,
                user_id=event.user_id,
                pending_seconds=settings.earn_pending_seconds,
                wait_for_payment_seconds=settings.accrual_wait_for_payment_seconds,
            ),
            id=accrual_workflow_id(event.booking_id),
            task_queue=settings.temporal_task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            start_signal="booking_event",
            start_signal_args=[news],
            search_attributes=_search_attributes(event),
            static_summary=f"Points earned on booking {event.booking_id} by {event.user_id}",
        )
    except WorkflowAlreadyStartedError:
        return False
    return True


async def _to_refund(
    client: Client, settings: Settings, inp: RefundInput, event: AnyBookingEvent
) -> bool:
    try:
        await client.start_workflow(
            RefundWorkflow.run,
            inp,
            id=refund_workflow_id(inp.booking_id, inp.refund_id),
            task_queue=settings.temporal_task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=_search_attributes(event),
            static_summary=(
                f"Refund {inp.refund_id} of booking {inp.booking_id}: "
                f"{'full' if inp.full else f'{inp.refund_amount} {inp.currency}'}"
            ),
        )
    except WorkflowAlreadyStartedError:
        return False
    return True


async def receive(
    conn: AsyncConnection, client: Client, settings: Settings, event: AnyBookingEvent
) -> BookingEventAck:
    currency = getattr(event, "currency", None)
    if currency is not None and currency != settings.currency:
        raise ValidationFailed(
            f"amounts must be in {settings.currency}", currency=currency, expected=settings.currency
        )
    workflow_id = workflow_id_for(event)
    if not await claim(conn, event, workflow_id):
        return BookingEventAck(
            event_id=event.event_id, duplicate=True, workflow_id=workflow_id, outcome="duplicate"
        )
    if isinstance(event, BookingRefunded):
        accepted = await _to_refund(
            client,
            settings,
            RefundInput(
                booking_id=event.booking_id,
                user_id=event.user_id,
                refund_id=event.refund_id,
                refund_amount=event.refund_amount,
                currency=event.currency,
                full=event.full,
            ),
            event,
        )
    elif isinstance(event, BookingCancelled):
        accepted = await _to_refund(
            client,
            settings,
            RefundInput(
                booking_id=event.booking_id,
                user_id=event.user_id,
                refund_id=CANCEL_REFUND_ID,
                refund_amount=0,
                currency=settings.currency,
                full=True,
                reason=event.reason,
            ),
            event,
        )
        await _to_accrual(client, settings, event, AccrualNews(event=event))
    else:
        accepted = await _to_accrual(client, settings, event, AccrualNews(event=event))
    return BookingEventAck(
        event_id=event.event_id,
        duplicate=False,
        workflow_id=workflow_id,
        outcome="accepted" if accepted else "already_finished",
    )
