"""VoucherPurchaseWorkflow: one customer buys one voucher with points, as a saga.

Id `voucher-purchase-{user_id}-{idempotency_key}` (the client's key), so a retried request meets
the same workflow. Steps: reserve an item of inventory -> burn the price in points -> issue the
code -> notify. A refusal while reserving changes nothing; a burn refused for lack of points
puts the item back. A refusal is an outcome, not a fault: the workflow completes with status
`rejected` and the refusal in its result (runs begun before the `REFUSALS_COMPLETE` patch fail
with it instead, as they did). When the code cannot be issued, the points are refunded and the
item is put back, in that order, and the workflow fails with `voucher_purchase_failed`:
something broke (the same key may be tried again). Once the code is issued the purchase stands:
a failed notification is recorded in the outbox and the result, never undone.

Orchestration only: the rules and the store are in loyalty.vouchers, reached through
activities.vouchers."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from workflows import policies

with workflow.unsafe.imports_passed_through():
    from activities.notifications import NotificationActivities
    from activities.vouchers import VoucherActivities
    from loyalty.core import search_attributes as sa
    from loyalty.core.refusals import details_of, refusal_in, reraisable
    from loyalty.vouchers.contracts import (
        BurnPoints,
        IssueVoucher,
        PurchaseInput,
        PurchaseRefusal,
        PurchaseResult,
        PurchaseState,
        RefundPoints,
        ReleaseReservation,
        Reservation,
        ReserveVoucher,
        VoucherOut,
        WorkflowStep,
        delivery_notification,
    )
    from loyalty.vouchers.rules import VoucherPurchaseFailed

PURCHASE_FAILED = VoucherPurchaseFailed.code
# From this patch on a business refusal completes the workflow (status `rejected`) instead of
# failing it; histories without its marker replay the failing shape.
REFUSALS_COMPLETE = "voucher-refusals-complete"


@workflow.defn
class VoucherPurchaseWorkflow:
    @workflow.init
    def __init__(self, inp: PurchaseInput) -> None:
        self._state = PurchaseState(
            step="reserving", user_id=inp.user_id, product_id=inp.product_id
        )

    @workflow.query
    def status(self) -> PurchaseState:
        return self._state

    @workflow.run
    async def run(self, inp: PurchaseInput) -> PurchaseResult:
        workflow.upsert_search_attributes([sa.LOYALTY_USER_ID.value_set(inp.user_id)])
        self._step("reserving", f"reserving product {inp.product_id}")
        try:
            reservation = await workflow.execute_activity_method(
                VoucherActivities.reserve,
                ReserveVoucher(
                    user_id=inp.user_id,
                    product_id=inp.product_id,
                    idempotency_key=inp.idempotency_key,
                    run_id=workflow.info().run_id,
                ),
                start_to_close_timeout=policies.VOUCHER_TIMEOUT,
                retry_policy=policies.VOUCHER_STEPS,
                summary=f"reserve one {inp.product_id} for {inp.user_id}",
            )
        except ActivityError as err:
            error = self._refusal_of(err)
            if self._completes_on(err):
                return self._reject(inp, error)
            self._record_error(error)
            raise error from err
        self._state.purchase_id = reservation.purchase_id

        if reservation.voucher is not None:  # this key's purchase already completed
            return await self._finish(inp, reservation.voucher)

        burn_tx_id = reservation.burn_tx_id
        if burn_tx_id is None:
            self._step("burning", f"burning {reservation.price_points} points")
            try:
                burned = await workflow.execute_activity_method(
                    VoucherActivities.burn,
                    BurnPoints(
                        purchase_id=reservation.purchase_id,
                        attempt=reservation.attempt,
                        user_id=inp.user_id,
                        points=reservation.price_points,
                        product_name=reservation.product_name,
                    ),
                    start_to_close_timeout=policies.VOUCHER_TIMEOUT,
                    retry_policy=policies.VOUCHER_STEPS,
                    summary=f"burn {reservation.price_points} points of {inp.user_id}",
                )
            except ActivityError as err:
                error = self._refusal_of(err)
                completes = self._completes_on(err)
                await self._release(reservation, error)
                if completes:
                    return self._reject(inp, error)
                self._record_error(error)
                raise error from err
            burn_tx_id = burned.tx_id
        self._state.burn_tx_id = burn_tx_id

        self._step("issuing", "issuing the voucher code")
        try:
            voucher = await workflow.execute_activity_method(
                VoucherActivities.issue,
                IssueVoucher(purchase_id=reservation.purchase_id),
                start_to_close_timeout=policies.VOUCHER_TIMEOUT,
                retry_policy=policies.ISSUE_VOUCHER,
                summary=f"issue the code of purchase {reservation.purchase_id}",
            )
        except ActivityError as err:
            error = ApplicationError(
                "the voucher could not be issued; the points and the item were given back",
                {"purchase_id": str(reservation.purchase_id), "cause": str(err.cause or err)},
                type=PURCHASE_FAILED,
                non_retryable=True,
            )
            self._step("compensating", "refunding the points and releasing the item")
            await workflow.execute_activity_method(
                VoucherActivities.refund,
                RefundPoints(
                    purchase_id=reservation.purchase_id,
                    attempt=reservation.attempt,
                    burn_tx_id=burn_tx_id,
                    points=reservation.price_points,
                ),
                start_to_close_timeout=policies.VOUCHER_TIMEOUT,
                retry_policy=policies.VOUCHER_STEPS,
                summary=f"refund {reservation.price_points} points (undo burn {burn_tx_id})",
            )
            await self._release(reservation, error)
            self._record_error(error)
            raise error from err
        return await self._finish(inp, voucher)

    async def _finish(self, inp: PurchaseInput, voucher: VoucherOut) -> PurchaseResult:
        self._state.voucher_id = voucher.voucher_id
        self._step("notifying", "notifying the customer")
        notified = True
        try:
            await workflow.execute_activity_method(
                NotificationActivities.send,
                delivery_notification(voucher),
                start_to_close_timeout=policies.VOUCHER_TIMEOUT,
                retry_policy=policies.VOUCHER_NOTIFY,
                summary="tell the customer their voucher code",
            )
        except ActivityError:
            # The voucher stands; the outbox keeps the undelivered notification for a relay.
            notified = False
        self._step("completed", f"voucher {voucher.voucher_id} issued")
        return PurchaseResult(
            user_id=inp.user_id,
            product_id=inp.product_id,
            idempotency_key=inp.idempotency_key,
            voucher=voucher,
            notified=notified,
        )

    @staticmethod
    def _completes_on(err: ActivityError) -> bool:
        """Whether this failure ends the purchase as a completed `rejected` one: a business
        refusal, in a run that began under the REFUSALS_COMPLETE patch."""
        return refusal_in(err) is not None and workflow.patched(REFUSALS_COMPLETE)

    def _reject(self, inp: PurchaseInput, refusal: ApplicationError) -> PurchaseResult:
        code = refusal.type or PURCHASE_FAILED
        self._state.step = "rejected"
        self._state.error_code = code
        self._state.error_message = refusal.message
        workflow.set_current_details(f"rejected: {code}: {refusal.message}")
        return PurchaseResult(
            user_id=inp.user_id,
            product_id=inp.product_id,
            idempotency_key=inp.idempotency_key,
            status="rejected",
            refusal=PurchaseRefusal(
                code=code, message=refusal.message, details=details_of(refusal)
            ),
        )

    async def _release(self, reservation: Reservation, error: ApplicationError) -> None:
        self._step("compensating", "putting the item back")
        await workflow.execute_activity_method(
            VoucherActivities.release,
            ReleaseReservation(
                purchase_id=reservation.purchase_id,
                attempt=reservation.attempt,
                failure_code=error.type or PURCHASE_FAILED,
                failure_message=error.message,
            ),
            start_to_close_timeout=policies.VOUCHER_TIMEOUT,
            retry_policy=policies.VOUCHER_STEPS,
            summary=f"release the item of purchase {reservation.purchase_id}",
        )

    @staticmethod
    def _refusal_of(err: ActivityError) -> ApplicationError:
        """The refusal to end the purchase with: the activity's own (its code reaches the
        client), or `voucher_purchase_failed` for anything else."""
        refusal = refusal_in(err)
        if refusal is None:
            return ApplicationError(str(err), type=PURCHASE_FAILED, non_retryable=True)
        return reraisable(refusal)

    def _record_error(self, error: ApplicationError) -> None:
        self._state.step = "failed"
        self._state.error_code = error.type
        self._state.error_message = error.message
        workflow.set_current_details(f"failed: {error.type}: {error.message}")

    def _step(self, step: WorkflowStep, details: str) -> None:
        self._state.step = step
        workflow.set_current_details(details)
