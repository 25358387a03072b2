"""AccrualWorkflow: the points one booking earns, from its payment to posted points.

Id `accrual-{booking_id}`, started (or signalled) with signal-with-start by every booking event
of the booking (api/routers/booking_events.py), so redelivered events meet the same workflow,
which acts on each event id once and earns once per booking:

1. wait for the payment (`payment_succeeded`, or `booking_confirmed` carrying `amount_paid`);
   a cancellation before it ends the workflow with nothing earned;
2. `accrue_booking_points`: post the earn, or plan it as pending until the end of stay or
   `pending_seconds` after payment;
3. pending: a durable timer until then; a refund that voids the pending points (RefundWorkflow,
   which signals `pending_voided`) cuts it short. Then `activate_booking_points` posts what is
   still pending (the database decides: refunds reduce or void the pending row);
4. notify (points earned, tier changed) with keyed notifications.

Orchestration only: activities by name, rules in loyalty.accrual."""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from loyalty.booking_events import (
        AccrualInput,
        AccrualNews,
        AccrualState,
        AccrualStatus,
        ActivateCommand,
        BookingCancelled,
        BookingConfirmed,
        EarnCommand,
        EarnOutcome,
        PaymentSucceeded,
    )

RETRY_FOREVER = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)
)
ACTIVITY_TIMEOUT = timedelta(seconds=30)
# Above the notification client's own 10 s timeout; a lost attempt is retried this soon.
NOTIFY_TIMEOUT = timedelta(seconds=15)


@workflow.defn
class AccrualWorkflow:
    @workflow.init
    def __init__(self, inp: AccrualInput) -> None:
        self._input = inp
        self._events: list[str] = []
        self._payment: PaymentSucceeded | BookingConfirmed | None = None
        self._confirmed: BookingConfirmed | None = None
        self._cancelled = False
        self._voided = False
        self._status: AccrualStatus = "waiting_for_payment"
        self._outcome: EarnOutcome | None = None

    @workflow.signal
    def booking_event(self, news: AccrualNews) -> None:
        event = news.event
        if event.event_id in self._events:
            return
        self._events.append(event.event_id)
        if isinstance(event, BookingCancelled):
            self._cancelled = True
        elif isinstance(event, PaymentSucceeded):
            self._payment = self._payment or event
        else:
            self._confirmed = self._confirmed or event
            if event.amount_paid is not None and event.currency is not None:
                self._payment = self._payment or event

    @workflow.signal
    def pending_voided(self) -> None:
        """A refund voided the pending points: stop waiting for the timer."""
        self._voided = True

    @workflow.query
    def status(self) -> AccrualState:
        return AccrualState(
            booking_id=self._input.booking_id,
            user_id=self._input.user_id,
            status=self._status,
            outcome=self._outcome,
            events=list(self._events),
        )

    @workflow.run
    async def run(self, inp: AccrualInput) -> AccrualState:
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self._payment is not None or self._cancelled,
                timeout=timedelta(seconds=inp.wait_for_payment_seconds),
            )
        if self._payment is None:
            self._set_status("cancelled" if self._cancelled else "nothing_to_earn")
            return await self._finish()

        self._set_status("earning")
        outcome = await workflow.execute_activity(
            "accrue_booking_points",
            self._earn_command(self._payment),
            result_type=EarnOutcome,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY_FOREVER,
            summary=f"earn on the payment of booking {inp.booking_id}",
        )
        self._record(outcome)
        if outcome.status == "pending" and outcome.pending_until is not None:
            wait = outcome.pending_until - workflow.now()
            workflow.set_current_details(
                f"{outcome.points} points pending until {outcome.pending_until.isoformat()}"
            )
            if wait > timedelta(0):
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(lambda: self._voided, timeout=wait)
            outcome = await workflow.execute_activity(
                "activate_booking_points",
                ActivateCommand(booking_id=inp.booking_id, user_id=inp.user_id),
                result_type=EarnOutcome,
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=RETRY_FOREVER,
                summary=f"activate the pending points of booking {inp.booking_id}",
            )
            self._record(outcome)
        for note in outcome.notifications:
            await workflow.execute_activity(
                "send_notification",
                note,
                result_type=str,
                start_to_close_timeout=NOTIFY_TIMEOUT,
                retry_policy=RETRY_FOREVER,
                summary=f"notify {note.kind.value}",
            )
        return await self._finish()

    def _earn_command(self, paid: PaymentSucceeded | BookingConfirmed) -> EarnCommand:
        facts = self._confirmed
        stay_ends_at = paid.stay_ends_at or (facts.stay_ends_at if facts else None)
        paid_at = paid.paid_at or workflow.now()
        pending_until = stay_ends_at
        if pending_until is None and self._input.pending_seconds > 0:
            pending_until = paid_at + timedelta(seconds=self._input.pending_seconds)
        assert paid.amount_paid is not None and paid.currency is not None
        return EarnCommand(
            booking_id=self._input.booking_id,
            user_id=self._input.user_id,
            payment_id=paid.payment_id,
            amount_paid=paid.amount_paid,
            currency=paid.currency,
            paid_at=paid_at,
            product_type=paid.product_type or (facts.product_type if facts else None),
            category=paid.category or (facts.category if facts else None),
            pending_until=pending_until,
        )

    def _record(self, outcome: EarnOutcome) -> None:
        self._outcome = outcome
        self._set_status(outcome.status)

    def _set_status(self, status: AccrualStatus) -> None:
        self._status = status
        workflow.set_current_details(f"accrual {status}")

    async def _finish(self) -> AccrualState:
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.status()
