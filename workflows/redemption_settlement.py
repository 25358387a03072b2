"""How the checkout saga (workflows.redemption) settles: it cancels the PaymentIntent within its
deadline, then captures or releases the hold, and says where operators look when the payment
side cannot be settled (the CheckoutAlert) or a settlement is refused for good. Also the status
the saga publishes as the RedemptionStatus search attribute.

A base class of RedemptionWorkflow, which holds the state it reads and writes; orchestration
only, like the workflow (activities by method, policies from workflows.policies)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from workflows import policies

with workflow.unsafe.imports_passed_through():
    from activities.notifications import NotificationActivities
    from activities.redemption import RedemptionActivities, StripePaymentActivities
    from loyalty.core import search_attributes as sa
    from loyalty.core.refusals import refusal_in
    from loyalty.notifications.models import Notification
    from loyalty.redemption.contracts import (
        PAYMENT_INTENT_MISSING,
        CancelPaymentIntent,
        Decision,
        HoldPlaced,
        RedemptionHold,
        RedemptionInput,
        SettleHold,
        Status,
    )
    from loyalty.redemption.rules import CAPTURING_DECISIONS

# The capture or release activity (RedemptionActivities.capture / .release).
Settlement = Callable[[RedemptionActivities, SettleHold], Awaitable[Notification | None]]


class CheckoutSettlement:
    """The saga's settlement; RedemptionWorkflow sets these in its __init__."""

    _input: RedemptionInput
    _status: Status
    _published_status: Status
    _decision: Decision | None
    _decision_reason: str | None
    _payment_status: str | None
    _alert: str | None
    _alert_message: str | None

    async def _settle(self, answer: RedemptionHold) -> None:
        capture = self._decision in CAPTURING_DECISIONS
        reason = self._decision_reason or str(self._decision)
        if answer.payment_intent_id is not None and self._decision != "payment_succeeded":
            # Stop the PaymentIntent from being paid later. A confirm means the booking was
            # settled another way; anything else means the checkout is off.
            self._set_status("capturing" if capture else "releasing")
            self._payment_status = await self._cancel_payment_intent(
                answer, answer.payment_intent_id, reason
            )
            if self._payment_status == "succeeded" and not capture:
                capture = True
                reason = f"the customer paid before the cancel ({reason})"
        elif self._decision == "payment_succeeded":
            self._payment_status = "succeeded"
        # Version 2 settles in a local activity: its outcome reaches the server in the same
        # workflow task as this status, so only the outcome is published (the status query and
        # the current details say capturing / releasing meanwhile).
        self._set_status(
            "capturing" if capture else "releasing", publish=self._input.saga_version == 1
        )
        workflow.set_current_details(f"{self._status}: {reason}")
        try:
            await self._settle_hold(
                RedemptionActivities.capture if capture else RedemptionActivities.release,
                answer,
                answer.payment_intent_id,
                reason,
            )
        except (ActivityError, ApplicationError) as err:
            # Final (a refusal or a data error): the run fails, and says so where operators look.
            self._raise_alert(
                "settlement_failed",
                f"the {'capture' if capture else 'release'} of hold {answer.hold_id} failed for "
                f"good: {err.cause or err}",
            )
            raise
        self._set_status("captured" if capture else "released")
        workflow.set_current_details(f"{self._status}: {reason}")

    async def _cancel_payment_intent(
        self, answer: RedemptionHold, payment_intent_id: str, reason: str
    ) -> str:
        """The PaymentIntent's final status after the cancel. Tried (with backoff) until the
        hold's expiry plus the payment grace; a PaymentIntent Stripe does not know, or one it
        will not cancel, or no answer by then, raises the CheckoutAlert: the points are settled
        anyway (released, or captured on a confirm), and an operator checks the payment."""
        deadline = answer.hold_expires_at + timedelta(seconds=self._input.payment_grace_seconds)
        try:
            status = await workflow.execute_activity_method(
                StripePaymentActivities.cancel_payment_intent,
                CancelPaymentIntent(
                    payment_intent_id=payment_intent_id,
                    booking_id=answer.booking_id,
                    reason=reason,
                ),
                start_to_close_timeout=policies.ACTIVITY_TIMEOUT,
                schedule_to_close_timeout=max(
                    deadline - workflow.now(), policies.PAYMENT_CANCEL_AT_LEAST
                ),
                retry_policy=policies.UNTIL_DONE,
                summary=f"cancel {payment_intent_id} ({reason})",
            )
        except ActivityError as err:
            self._raise_alert(
                "payment_unsettled",
                f"PaymentIntent {payment_intent_id} could not be cancelled: {err.cause or err}",
            )
            return "unknown"
        if status == PAYMENT_INTENT_MISSING:
            self._raise_alert(
                "payment_intent_missing",
                f"Stripe does not know PaymentIntent {payment_intent_id}: nothing to cancel",
            )
        return status

    async def _settle_hold(
        self,
        activity: Settlement,
        held: HoldPlaced | RedemptionHold,
        payment_intent_id: str | None,
        reason: str,
    ) -> None:
        hold_id = held.hold_id
        points = held.points if isinstance(held, HoldPlaced) else held.points_held
        command = SettleHold(
            hold_id=hold_id,
            booking_id=self._input.booking_id,
            payment_intent_id=payment_intent_id,
            discount_minor=held.discount_minor,
            currency=self._input.currency,
            reason=reason,
        )
        summary = f"{activity.__name__} {points} points: {reason}"
        note = await self._post_settlement(activity, command, summary)
        if note is not None and self._input.saga_version >= 3:
            await self._notify(note)

    async def _post_settlement(
        self, activity: Settlement, command: SettleHold, summary: str
    ) -> Notification | None:
        if self._input.saga_version >= 2:
            # One short database transaction: as a local activity it needs no activity task
            # and no further workflow task, which halves the server's work after the payment.
            # If it fails twice (database trouble), it goes on as an ordinary activity: a local
            # one retrying for long would hold the workflow task open, delaying queries, and
            # would show operators neither the status nor the pending activity.
            try:
                return await workflow.execute_local_activity_method(
                    activity,
                    command,
                    start_to_close_timeout=policies.LOCAL_TIMEOUT,
                    retry_policy=policies.LOCAL_TRIES,
                    summary=summary,
                )
            except (ActivityError, ApplicationError) as err:
                if refusal_in(err) is not None:  # a refusal: an activity would get the same
                    raise
                workflow.logger.warning(
                    "%s failed locally, retrying as an activity: %s", activity.__name__, err
                )
            self._publish_status()
        return await workflow.execute_activity_method(
            activity,
            command,
            start_to_close_timeout=policies.ACTIVITY_TIMEOUT,
            retry_policy=policies.UNTIL_DONE,
            summary=summary,
        )

    async def _notify(self, note: Notification) -> None:
        """Tell the customer (points redeemed, hold released). First as a local activity, in
        the workflow task that settled the hold, so a delivery that works costs the server
        nothing more; then a few times as an activity. A notification service that stays
        down never keeps the checkout open: the outbox keeps the undelivered notification."""
        summary = f"notify {note.kind.value}"
        try:
            await workflow.execute_local_activity_method(
                NotificationActivities.send,
                note,
                start_to_close_timeout=policies.NOTIFY_TIMEOUT,
                retry_policy=policies.LOCAL_TRIES,
                summary=summary,
            )
            return
        except (ActivityError, ApplicationError) as err:
            if refusal_in(err) is not None:
                workflow.logger.warning("%s refused for good: %s", summary, err.cause or err)
                return
        try:
            await workflow.execute_activity_method(
                NotificationActivities.send,
                note,
                start_to_close_timeout=policies.NOTIFY_TIMEOUT,
                retry_policy=policies.NOTIFY_FEW_TIMES,
                summary=summary,
            )
        except ActivityError as err:
            workflow.logger.warning("%s not delivered, left in the outbox: %s", summary, err)

    def _raise_alert(self, alert: str, message: str) -> None:
        """Something an operator must look at: the CheckoutAlert search attribute (the first
        alert stays) and a line at error level."""
        if self._alert is None:
            self._alert, self._alert_message = alert, message
            workflow.upsert_search_attributes([sa.CHECKOUT_ALERT.value_set(alert)])
        workflow.logger.error(
            "checkout %s needs an operator (%s): %s", self._input.booking_id, alert, message
        )

    def _set_status(self, status: Status, *, publish: bool = True) -> None:
        self._status = status
        if publish:
            self._publish_status()

    def _publish_status(self) -> None:
        """The status as the RedemptionStatus search attribute, if it is not that already."""
        if self._status != self._published_status:
            self._published_status = self._status
            workflow.upsert_search_attributes([sa.REDEMPTION_STATUS.value_set(self._status)])
