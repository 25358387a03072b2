"""Booking events handed to their workflows (POST /booking-events):

- booking confirmed, payment succeeded: signal-with-start `accrual-{booking_id}`;
- booking refunded: start `refund-{booking_id}-{refund_id}`;
- booking cancelled: start `refund-{booking_id}-cancel` (a full refund) and tell the accrual,
  which ends without earning if it is still waiting for the payment.

Redelivery does nothing new, three ways: the event id is claimed (loyalty.earning.intake), the
workflow ids are business keys (a running workflow is signalled, never started twice), and a
finished workflow is never started again (id reuse policy REJECT_DUPLICATE): a late payment for
a booking whose accrual ended, or a refund already processed, is acknowledged and ignored. The
claim is written in the request's transaction, which commits only after Temporal accepted the
event: if Temporal is down the request fails (503) and the redelivery acts."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from loyalty.core import search_attributes as sa
from loyalty.core.settings import Settings
from loyalty.earning import intake
from loyalty.earning.contracts import AccrualInput, AccrualNews, RefundInput, accrual_workflow_id
from loyalty.earning.events import BookingCancelled, BookingEvent, BookingEventAck, BookingRefunded
from workflows.earning import AccrualWorkflow, RefundWorkflow


def _search_attributes(event: BookingEvent) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(sa.LOYALTY_USER_ID, event.user_id),
            SearchAttributePair(sa.BOOKING_ID, event.booking_id),
        ]
    )


async def _to_accrual(
    client: Client, settings: Settings, event: BookingEvent, news: AccrualNews
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
    client: Client, settings: Settings, inp: RefundInput, event: BookingEvent
) -> bool:
    try:
        await client.start_workflow(
            RefundWorkflow.run,
            inp,
            id=intake.workflow_id_for(event),
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
    conn: AsyncConnection, client: Client, settings: Settings, event: BookingEvent
) -> BookingEventAck:
    intake.check_currency(event, settings.currency)
    workflow_id = intake.workflow_id_for(event)
    if not await intake.claim(conn, event, workflow_id):
        return BookingEventAck(
            event_id=event.event_id, duplicate=True, workflow_id=workflow_id, outcome="duplicate"
        )
    if isinstance(event, BookingRefunded | BookingCancelled):
        accepted = await _to_refund(
            client, settings, intake.refund_of(event, settings.currency), event
        )
        if isinstance(event, BookingCancelled):
            await _to_accrual(client, settings, event, AccrualNews(event=event))
    else:
        accepted = await _to_accrual(client, settings, event, AccrualNews(event=event))
    return BookingEventAck(
        event_id=event.event_id,
        duplicate=False,
        workflow_id=workflow_id,
        outcome="accepted" if accepted else "already_finished",
    )
