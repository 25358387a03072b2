"""Earning's workflows: what a booking earns, and what each of its refunds gives back.

AccrualWorkflow, id `accrual-{booking_id}`, started (or signalled) with signal-with-start by
every booking event of the booking (api/temporal/booking_events.py), so redelivered events meet
the same workflow, which acts on each event id once and earns once per booking:

1. wait for the payment (`payment_succeeded`, or `booking_confirmed` carrying `amount_paid`);
   a cancellation before it ends the workflow with nothing earned;
2. accrue: post the earn, or plan it as pending until the end of stay or `pending_seconds`
   after payment;
3. pending: a durable timer until then; a refund that voids the pending points (RefundWorkflow,
   which signals `pending_voided`) cuts it short. Then activate: post what is still pending
   (the database decides: refunds reduce or void the pending row);
4. notify (points earned, tier changed) with keyed notifications.

RefundWorkflow, id `refund-{booking_id}-{refund_id}` (a cancellation is the full refund
`cancel`); started once per refund, every posting keyed by booking and refund:

1. give back the points the customer paid with, pro rata (first, so they count towards the
   available balance the clawback may take from);
2. take back the points earned on the refunded money (a pending earn shrinks or is voided
   instead; a shortfall becomes a debt, see loyalty.earning.debt);
3. a voided pending earn wakes its AccrualWorkflow (`pending_voided`) so it stops waiting;
4. notify the customer (points returned, points clawed back).

Orchestration only: the arithmetic lives in loyalty.earning."""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import FailureError

from workflows import policies

with workflow.unsafe.imports_passed_through():
    from activities.earning import EarningActivities
    from activities.notifications import NotificationActivities
    from loyalty.earning.contracts import (
        AccrualInput,
        AccrualNews,
        AccrualState,
        AccrualStatus,
        ActivateCommand,
        EarnCommand,
        EarnOutcome,
        RefundInput,
        RefundOutcome,
        accrual_workflow_id,
    )
    from loyalty.earning.events import BookingCancelled, BookingConfirmed, PaymentSucceeded


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
        outcome = await workflow.execute_activity_method(
            EarningActivities.accrue,
            self._earn_command(self._payment),
            start_to_close_timeout=policies.ACTIVITY_TIMEOUT,
            retry_policy=policies.UNTIL_DONE,
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
            outcome = await workflow.execute_activity_method(
                EarningActivities.activate,
                ActivateCommand(booking_id=inp.booking_id, user_id=inp.user_id),
                start_to_close_timeout=policies.ACTIVITY_TIMEOUT,
                retry_policy=policies.UNTIL_DONE,
                summary=f"activate the pending points of booking {inp.booking_id}",
            )
            self._record(outcome)
        for note in outcome.notifications:
            await workflow.execute_activity_method(
                NotificationActivities.send,
                note,
                start_to_close_timeout=policies.NOTIFY_TIMEOUT,
                retry_policy=policies.UNTIL_DONE,
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


@workflow.defn
class RefundWorkflow:
    @workflow.init
    def __init__(self, inp: RefundInput) -> None:
        self._input = inp
        self._outcome = RefundOutcome(booking_id=inp.booking_id, refund_id=inp.refund_id)
        self._step = "returning burned points"

    @workflow.query
    def status(self) -> RefundOutcome:
        return self._outcome

    @workflow.run
    async def run(self, inp: RefundInput) -> RefundOutcome:
        returned = await workflow.execute_activity_method(
            EarningActivities.return_burned,
            inp,
            start_to_close_timeout=policies.ACTIVITY_TIMEOUT,
            retry_policy=policies.UNTIL_DONE,
            summary=f"give back points spent on {inp.booking_id} (refund {inp.refund_id})",
        )
        self._outcome.points_returned = returned.points_returned
        self._set_step("clawing back earned points")
        clawed = await workflow.execute_activity_method(
            EarningActivities.claw_back,
            inp,
            start_to_close_timeout=policies.ACTIVITY_TIMEOUT,
            retry_policy=policies.UNTIL_DONE,
            summary=f"take back points earned on {inp.booking_id} (refund {inp.refund_id})",
        )
        self._outcome.points_clawed_back = clawed.points_clawed_back
        self._outcome.pending_reduced = clawed.pending_reduced
        self._outcome.pending_voided = clawed.pending_voided
        self._outcome.debt_recorded = clawed.debt_recorded
        self._outcome.notifications = returned.notifications + clawed.notifications

        if clawed.pending_voided:
            accrual = workflow.get_external_workflow_handle(accrual_workflow_id(inp.booking_id))
            # The accrual may have ended already: then nothing waits for the news.
            with contextlib.suppress(FailureError):
                await accrual.signal("pending_voided")

        self._set_step("notifying")
        for note in self._outcome.notifications:
            await workflow.execute_activity_method(
                NotificationActivities.send,
                note,
                start_to_close_timeout=policies.NOTIFY_TIMEOUT,
                retry_policy=policies.UNTIL_DONE,
                summary=f"notify {note.kind.value}",
            )
        self._set_step("done")
        return self._outcome

    def _set_step(self, step: str) -> None:
        self._step = step
        workflow.set_current_details(f"refund {self._input.refund_id}: {step}")
