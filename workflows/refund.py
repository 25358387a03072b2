"""RefundWorkflow: the points side of one refund of a booking, as a compensation.

Id `refund-{booking_id}-{refund_id}` (a cancellation is the full refund `cancel`); started once
per refund (a redelivered event meets the same workflow and starts nothing new), and every
posting is keyed by booking and refund, so it is idempotent per refund:

1. `return_burned_points`: the points the customer paid with, given back pro rata (first, so
   they count towards the available balance the clawback may take from);
2. `claw_back_earned_points`: the points earned on the refunded money taken back (a pending
   earn shrinks or is voided instead; a shortfall becomes a debt, see loyalty.refunds);
3. a voided pending earn wakes its AccrualWorkflow (`pending_voided`) so it stops waiting;
4. notify the customer (points returned, points clawed back).

Orchestration only: the arithmetic and the debt rule live in loyalty.refunds."""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from loyalty.booking_events import RefundInput, RefundOutcome, accrual_workflow_id

RETRY_FOREVER = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)
)
ACTIVITY_TIMEOUT = timedelta(seconds=30)
# Above the notification client's own 10 s timeout; a lost attempt is retried this soon.
NOTIFY_TIMEOUT = timedelta(seconds=15)


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
        returned = await workflow.execute_activity(
            "return_burned_points",
            inp,
            result_type=RefundOutcome,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY_FOREVER,
            summary=f"give back points spent on {inp.booking_id} (refund {inp.refund_id})",
        )
        self._outcome.points_returned = returned.points_returned
        self._set_step("clawing back earned points")
        clawed = await workflow.execute_activity(
            "claw_back_earned_points",
            inp,
            result_type=RefundOutcome,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY_FOREVER,
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
            await workflow.execute_activity(
                "send_notification",
                note,
                result_type=str,
                start_to_close_timeout=NOTIFY_TIMEOUT,
                retry_policy=RETRY_FOREVER,
                summary=f"notify {note.kind.value}",
            )
        self._set_step("done")
        return self._outcome

    def _set_step(self, step: str) -> None:
        self._step = step
        workflow.set_current_details(f"refund {self._input.refund_id}: {step}")
