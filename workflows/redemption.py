"""RedemptionWorkflow: one checkout that applies points, as a durable saga.

Id `redemption-{booking_id}`. Started by update-with-start: the `redeem` update places the hold
(and the PaymentIntent for the remainder) and returns them to the booking service at once. The
saga then waits for the outcome (Stripe webhook signals, confirm / release from the booking
service, or the hold's expiry) and either captures the points or cancels the PaymentIntent and
releases them; when the cancel shows the customer already paid, it captures instead.

Orchestration only: activities are called by method (their modules are passed through the
sandbox, so no SQLAlchemy or Stripe runs in it), the rules live in loyalty.redemption.rules,
retry policies and timeouts in workflows.policies, and refusals are told apart from
infrastructure trouble by loyalty.core.refusals."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from workflows import policies

with workflow.unsafe.imports_passed_through():
    from activities.redemption import RedemptionActivities, StripePaymentActivities
    from loyalty.core import search_attributes as sa
    from loyalty.core.errors import LoyaltyError
    from loyalty.core.refusals import as_application_error, refusal_in, reraisable
    from loyalty.redemption.contracts import (
        BookingDecision,
        CancelPaymentIntent,
        Decision,
        HoldPlaced,
        PaymentEvent,
        PaymentIntentCreate,
        PaymentIntentRef,
        PlaceHold,
        RedeemRequest,
        RedemptionHold,
        RedemptionInput,
        RedemptionState,
        SettleHold,
        Status,
    )
    from loyalty.redemption.errors import RedemptionConflict, RedemptionRejected
    from loyalty.redemption.rules import CAPTURING_DECISIONS, same_request, validate_request

# The capture or release activity (RedemptionActivities.capture / .release).
Settlement = Callable[[RedemptionActivities, SettleHold], Awaitable[None]]


@workflow.defn
class RedemptionWorkflow:
    @workflow.init
    def __init__(self, inp: RedemptionInput) -> None:
        self._input = inp
        self._request: RedeemRequest | None = None
        self._answer: RedemptionHold | None = None
        self._status: Status = "pending"
        self._published_status: Status = "pending"  # as set at start
        self._decision: Decision | None = None
        self._decision_reason: str | None = None
        self._payment_status: str | None = None
        self._error: ApplicationError | None = None

    # --- the hold (update) -------------------------------------------------------------------

    @workflow.update
    async def redeem(self, request: RedeemRequest) -> RedemptionHold:
        """Place the hold and the PaymentIntent for the remainder; answer with both."""
        self._request = request
        info = workflow.info()
        hold_id = str(workflow.uuid4())
        workflow.set_current_details(f"placing a hold of {request.points} points")
        try:
            held = await workflow.execute_local_activity_method(
                RedemptionActivities.place_hold,
                PlaceHold(
                    request=request,
                    workflow_id=info.workflow_id,
                    hold_id=hold_id,
                    idempotency_key=f"redemption:{info.workflow_id}:{info.run_id}:hold",
                    expires_at=workflow.now() + timedelta(seconds=self._input.hold_ttl_seconds),
                ),
                start_to_close_timeout=policies.LOCAL_TIMEOUT,
                retry_policy=policies.UNTIL_DONE,
                summary=f"hold {request.points} points of {request.user_id}",
            )
        except (ActivityError, ApplicationError) as err:
            raise self._reject(err) from err

        intent: PaymentIntentRef | None = None
        if held.amount_to_charge_minor > 0:
            try:
                intent = await workflow.execute_local_activity_method(
                    StripePaymentActivities.create_payment_intent,
                    PaymentIntentCreate(
                        booking_id=request.booking_id,
                        user_id=request.user_id,
                        workflow_id=info.workflow_id,
                        run_id=info.run_id,
                        amount_minor=held.amount_to_charge_minor,
                        currency=request.currency,
                        hold_id=held.hold_id,
                    ),
                    start_to_close_timeout=policies.LOCAL_TIMEOUT,
                    retry_policy=policies.UNTIL_DONE,
                    summary=f"PaymentIntent for {held.amount_to_charge_minor} {request.currency}",
                )
            except (ActivityError, ApplicationError) as err:
                error = self._reject(err)
                await self._settle_hold(
                    RedemptionActivities.release, held, None, "payment could not be set up"
                )
                raise error from err

        self._answer = RedemptionHold(
            workflow_id=info.workflow_id,
            booking_id=request.booking_id,
            user_id=request.user_id,
            hold_id=held.hold_id,
            points_held=held.points,
            discount_minor=held.discount_minor,
            amount_to_charge_minor=held.amount_to_charge_minor,
            currency=request.currency,
            hold_expires_at=held.expires_at,
            payment_intent_id=intent.payment_intent_id if intent else None,
            client_secret=intent.client_secret if intent else None,
            request=request,
        )
        self._payment_status = intent.status if intent else None
        self._set_status("held")
        return self._answer

    @redeem.validator
    def _validate_redeem(self, request: RedeemRequest) -> None:
        """Refusals that need no database; nothing is written to the history for them."""
        inp = self._input
        try:
            if (request.booking_id, request.user_id) != (inp.booking_id, inp.user_id):
                raise RedemptionConflict(
                    "the request names another booking or wallet than this saga"
                )
            if self._request is not None and not same_request(request, self._request):
                raise RedemptionConflict(
                    "this booking already has a redemption with a different request"
                )
            validate_request(request, currency=inp.currency)
        except LoyaltyError as err:
            raise as_application_error(err) from err

    # --- the outcome (signals) ----------------------------------------------------------------

    @workflow.signal
    def payment_succeeded(self, event: PaymentEvent) -> None:
        self._payment_news("payment_succeeded", event)

    @workflow.signal
    def payment_failed(self, event: PaymentEvent) -> None:
        self._payment_news("payment_failed", event)

    @workflow.signal
    def payment_canceled(self, event: PaymentEvent) -> None:
        self._payment_news("payment_canceled", event)

    @workflow.signal
    def confirm(self, decision: BookingDecision) -> None:
        """The booking service confirms: paid outside Stripe, or nothing was left to charge."""
        self._decide("confirmed", decision.reason or "confirmed by the booking service")

    @workflow.signal
    def release(self, decision: BookingDecision) -> None:
        """The booking service cancels the checkout."""
        self._decide("released", decision.reason or "released by the booking service")

    @workflow.query
    def status(self) -> RedemptionState:
        return self._state()

    # --- the saga ------------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: RedemptionInput) -> RedemptionState:
        started_with_attributes = workflow.info().typed_search_attributes.get(sa.BOOKING_ID)
        if inp.saga_version == 1 or started_with_attributes is None:
            # The client sets these at start (api.temporal.checkout); a saga started otherwise gets
            # them here. (Deterministic: the start event carries the attributes.)
            workflow.upsert_search_attributes(
                [
                    sa.LOYALTY_USER_ID.value_set(inp.user_id),
                    sa.BOOKING_ID.value_set(inp.booking_id),
                    sa.REDEMPTION_STATUS.value_set(self._status),
                ]
            )
        if self._request is None:
            # Update-with-start delivers the update in the first workflow task, and its handler
            # starts before run(); no request here means the validator refused it. Nothing was
            # held: end now, as failed, so a corrected request may start the saga afresh.
            self._set_status("rejected")
            raise as_application_error(RedemptionRejected("no accepted redeem request"))
        await workflow.wait_condition(lambda: self._answer is not None or self._error is not None)
        if self._error is not None or self._answer is None:
            await workflow.wait_condition(workflow.all_handlers_finished)
            raise self._error or ApplicationError("no hold", non_retryable=True)
        answer = self._answer

        if self._decision is None:
            workflow.set_current_details(self._waiting_for(answer))
            try:
                await workflow.wait_condition(
                    lambda: self._decision is not None,
                    timeout=max(answer.hold_expires_at - workflow.now(), timedelta(0)),
                    timeout_summary="hold expiry",
                )
            except TimeoutError:
                self._decide("expired", "the hold expired")
        await self._settle(answer)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state()

    async def _settle(self, answer: RedemptionHold) -> None:
        capture = self._decision in CAPTURING_DECISIONS
        reason = self._decision_reason or str(self._decision)
        if answer.payment_intent_id is not None and self._decision != "payment_succeeded":
            # Stop the PaymentIntent from being paid later. A confirm means the booking was
            # settled another way; anything else means the checkout is off.
            self._set_status("capturing" if capture else "releasing")
            self._payment_status = await workflow.execute_activity_method(
                StripePaymentActivities.cancel_payment_intent,
                CancelPaymentIntent(
                    payment_intent_id=answer.payment_intent_id,
                    booking_id=answer.booking_id,
                    reason=reason,
                ),
                start_to_close_timeout=policies.ACTIVITY_TIMEOUT,
                retry_policy=policies.UNTIL_DONE,
                summary=f"cancel {answer.payment_intent_id} ({reason})",
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
        await self._settle_hold(
            RedemptionActivities.capture if capture else RedemptionActivities.release,
            answer,
            answer.payment_intent_id,
            reason,
        )
        self._set_status("captured" if capture else "released")
        workflow.set_current_details(f"{self._status}: {reason}")

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
        if self._input.saga_version >= 2:
            # One short database transaction: as a local activity it needs no activity task
            # and no further workflow task, which halves the server's work after the payment.
            # If it fails twice (database trouble), it goes on as an ordinary activity: a local
            # one retrying for long would hold the workflow task open, delaying queries, and
            # would show operators neither the status nor the pending activity.
            try:
                await workflow.execute_local_activity_method(
                    activity,
                    command,
                    start_to_close_timeout=policies.LOCAL_TIMEOUT,
                    retry_policy=policies.LOCAL_TRIES,
                    summary=summary,
                )
                return
            except (ActivityError, ApplicationError) as err:
                if refusal_in(err) is not None:  # a refusal: an activity would get the same
                    raise
                workflow.logger.warning(
                    "%s failed locally, retrying as an activity: %s", activity.__name__, err
                )
            self._publish_status()
        await workflow.execute_activity_method(
            activity,
            command,
            start_to_close_timeout=policies.ACTIVITY_TIMEOUT,
            retry_policy=policies.UNTIL_DONE,
            summary=summary,
        )

    # --- helpers -------------------------------------------------------------------------------

    def _payment_news(self, decision: Decision, event: PaymentEvent) -> None:
        expected = self._answer.payment_intent_id if self._answer else None
        if self._answer is not None and event.payment_intent_id != expected:
            workflow.logger.warning(
                "ignoring %s for %s: this checkout's PaymentIntent is %s",
                decision,
                event.payment_intent_id,
                expected,
            )
            return
        self._decide(decision, event.reason or decision.replace("_", " "))

    def _decide(self, decision: Decision, reason: str) -> None:
        # The first outcome wins; duplicates and late or out-of-order news change nothing.
        if self._decision is None and self._status != "rejected":
            self._decision = decision
            self._decision_reason = reason

    def _reject(self, err: ActivityError | ApplicationError) -> ApplicationError:
        refusal = refusal_in(err)
        # Retries are unlimited, so only a timeout or a cancellation is not a refusal here.
        self._error = (
            reraisable(refusal)
            if refusal is not None
            else as_application_error(RedemptionRejected(str(err.cause or err)))
        )
        self._set_status("rejected")
        return self._error

    def _set_status(self, status: Status, *, publish: bool = True) -> None:
        self._status = status
        if publish:
            self._publish_status()

    def _publish_status(self) -> None:
        """The status as the RedemptionStatus search attribute, if it is not that already."""
        if self._status != self._published_status:
            self._published_status = self._status
            workflow.upsert_search_attributes([sa.REDEMPTION_STATUS.value_set(self._status)])

    def _waiting_for(self, answer: RedemptionHold) -> str:
        expiry = answer.hold_expires_at.isoformat()
        if answer.payment_intent_id is None:
            return f"waiting for confirm or release from the booking service (expires {expiry})"
        return (
            f"waiting for payment of {answer.amount_to_charge_minor} {answer.currency} on "
            f"{answer.payment_intent_id}, or release (expires {expiry})"
        )

    def _state(self) -> RedemptionState:
        return RedemptionState(
            workflow_id=workflow.info().workflow_id,
            booking_id=self._input.booking_id,
            user_id=self._input.user_id,
            status=self._status,
            hold=self._answer,
            decision=self._decision,
            payment_status=self._payment_status,
            error_code=self._error.type if self._error else None,
            error_message=self._error.message if self._error else None,
            waiting_for=self._waiting_for(self._answer)
            if self._answer is not None and self._decision is None
            else None,
        )
