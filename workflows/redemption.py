"""RedemptionWorkflow: one checkout that applies points, as a durable saga.

Id `redemption-{booking_id}`. Started by update-with-start: the `redeem` update places the hold
(and the PaymentIntent for the remainder) and returns them to the booking service at once. The
saga then waits for the outcome (Stripe webhook signals, confirm / release from the booking
service, or the hold's expiry) and either captures the points or cancels the PaymentIntent and
releases them; when the cancel shows the customer already paid, it captures instead. A declined
payment attempt is counted and the saga keeps waiting (saga version 3): the customer may try
another card on the same PaymentIntent. A booking whose checkout ended without a capture may
check out again: a new run of the same workflow id (api.temporal.checkout starts it).

Every saga ends: the PaymentIntent's cancel is tried until the hold's expiry plus the payment
grace, then the CheckoutAlert search attribute is set and the points are settled anyway; an
answer that can never change (a refusal, a data error) is final at once.

Orchestration only: activities are called by method (their modules are passed through the
sandbox, so no SQLAlchemy or Stripe runs in it), the rules live in loyalty.redemption.rules,
retry policies and timeouts in workflows.policies, the settlement in
workflows.redemption_settlement, and refusals are told apart from infrastructure trouble by
loyalty.core.refusals."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from workflows import policies
from workflows.redemption_settlement import CheckoutSettlement

with workflow.unsafe.imports_passed_through():
    from activities.redemption import RedemptionActivities, StripePaymentActivities
    from loyalty.core import search_attributes as sa
    from loyalty.core.errors import LoyaltyError
    from loyalty.core.refusals import as_application_error, refusal_in, reraisable
    from loyalty.redemption.contracts import (
        BookingDecision,
        Decision,
        PaymentEvent,
        PaymentIntentCreate,
        PaymentIntentRef,
        PlaceHold,
        RedeemRequest,
        RedemptionHold,
        RedemptionInput,
        RedemptionState,
        Status,
    )
    from loyalty.redemption.errors import (
        PaymentUnavailable,
        RedemptionConflict,
        RedemptionEnding,
        RedemptionRejected,
    )
    from loyalty.redemption.rules import (
        failed_attempts,
        plain_reason,
        same_request,
        validate_request,
    )


@workflow.defn
class RedemptionWorkflow(CheckoutSettlement):
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
        self._payment_failures = 0
        self._failure_events: set[str] = set()
        self._last_payment_error: str | None = None
        self._alert: str | None = None
        self._alert_message: str | None = None

    # --- the hold (update) -------------------------------------------------------------------

    @workflow.update
    async def redeem(self, request: RedeemRequest) -> RedemptionHold:
        """Place the hold and the PaymentIntent for the remainder; answer with both."""
        if self._request is not None:
            # The same request again under another update id (the validator refuses any other
            # request): a run that follows a closed one was started under an update id naming
            # that run, and a retry that finds it running uses the plain one. It gets the first
            # update's answer or refusal.
            await workflow.wait_condition(
                lambda: self._answer is not None or self._error is not None
            )
            if self._answer is None:
                raise reraisable(self._error or ApplicationError("no hold", non_retryable=True))
            return self._answer
        self._request = request
        info = workflow.info()
        version = self._input.saga_version
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
                    restarted=self._input.previous_run_id is not None,
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
                    # Version 3: the caller waits, and the hold with it; not for ever.
                    retry_policy=policies.PAYMENT_SETUP if version >= 3 else policies.UNTIL_DONE,
                    summary=f"PaymentIntent for {held.amount_to_charge_minor} {request.currency}",
                )
            except (ActivityError, ApplicationError) as err:
                error = self._reject(err, PaymentUnavailable if version >= 3 else None)
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
            run_id=info.run_id,
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
            if self._decision is not None or self._error is not None:
                # Its hold is being settled (or was refused): the client waits for the run to
                # end, then starts the booking's next checkout or answers why it cannot.
                raise RedemptionEnding(
                    f"the checkout of booking {inp.booking_id} is ending",
                    booking_id=inp.booking_id,
                    status=self._status,
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
        """A declined attempt. Version 3 counts it and waits on: the PaymentIntent is back in
        `requires_payment_method`, and the customer may pay it with another card."""
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
            # held: end now, so a corrected request may start the booking's checkout afresh.
            self._set_status("rejected")
            refusal = as_application_error(RedemptionRejected("no accepted redeem request"))
            if inp.saga_version >= 3:  # a refusal is an outcome: the run completes
                self._error = refusal
                return self._state()
            raise refusal
        await workflow.wait_condition(lambda: self._answer is not None or self._error is not None)
        if self._error is not None or self._answer is None:
            await workflow.wait_condition(workflow.all_handlers_finished)
            if inp.saga_version >= 3 and self._error is not None:
                return self._state()  # completed, status `rejected`, the refusal in the state
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
        if decision == "payment_failed" and self._input.saga_version >= 3:
            self._count_failed_payment(event)
            return
        self._decide(decision, event.reason or decision.replace("_", " "))

    def _count_failed_payment(self, event: PaymentEvent) -> None:
        if self._answer is None or self._decision is not None:
            return  # late news: the checkout is already being settled
        if event.event_id is not None:
            if event.event_id in self._failure_events:
                return  # the same event again
            self._failure_events.add(event.event_id)
        self._payment_failures += 1
        self._last_payment_error = plain_reason(event.reason or "payment failed")
        self._payment_status = "requires_payment_method"
        workflow.upsert_search_attributes(
            [sa.PAYMENT_FAILURES.value_set(str(self._payment_failures))]
        )
        workflow.set_current_details(self._waiting_for(self._answer))

    def _decide(self, decision: Decision, reason: str) -> None:
        # The first outcome wins; duplicates and late or out-of-order news change nothing.
        if self._decision is None and self._status != "rejected":
            self._decision = decision
            self._decision_reason = plain_reason(reason)

    def _reject(
        self, err: ActivityError | ApplicationError, timed_out: type[LoyaltyError] | None = None
    ) -> ApplicationError:
        refusal = refusal_in(err)
        # Only a timeout or a cancellation is not a refusal here: `timed_out` names it.
        self._error = (
            reraisable(refusal)
            if refusal is not None
            else as_application_error((timed_out or RedemptionRejected)(str(err.cause or err)))
        )
        self._set_status("rejected")
        return self._error

    def _waiting_for(self, answer: RedemptionHold) -> str:
        expiry = answer.hold_expires_at.isoformat()
        if answer.payment_intent_id is None:
            return f"waiting for confirm or release from the booking service (expires {expiry})"
        if self._payment_failures:
            return (
                f"waiting for payment, {failed_attempts(self._payment_failures)} (last: "
                f"{self._last_payment_error}): {answer.amount_to_charge_minor} {answer.currency} "
                f"on {answer.payment_intent_id}, or release (expires {expiry})"
            )
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
            # The client secret is the redeem answer's alone: never in the query or the result.
            hold=self._answer.model_copy(update={"client_secret": None}) if self._answer else None,
            decision=self._decision,
            payment_status=self._payment_status,
            error_code=self._error.type if self._error else None,
            error_message=self._error.message if self._error else None,
            waiting_for=self._waiting_for(self._answer)
            if self._answer is not None and self._decision is None
            else None,
            payment_failures=self._payment_failures,
            last_payment_error=self._last_payment_error,
            alert=self._alert,
            alert_message=self._alert_message,
            run_id=workflow.info().run_id,
        )
