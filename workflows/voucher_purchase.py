"""VoucherPurchaseWorkflow: one customer buys one voucher with points, as a saga.

Id `voucher-purchase-{user_id}-{idempotency_key}` (the client's key), so a retried request meets
the same workflow. Steps: reserve an item of inventory -> burn the price in points -> issue the
code -> notify. A refusal while reserving changes nothing; a burn refused for lack of points
puts the item back; when the code cannot be issued, the points are refunded and the item is put
back, in that order, and the workflow fails with `voucher_purchase_failed` (the same key may be
tried again). Once the code is issued the purchase stands: a failed notification is recorded in
the outbox and the result, never undone.

Orchestration only: activities are called by name (no SQLAlchemy in the sandbox)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from loyalty.core import search_attributes as sa
    from loyalty.vouchers.schemas import (
        BurnPoints,
        IssueVoucher,
        PointsBurned,
        PurchaseInput,
        PurchaseResult,
        PurchaseState,
        RefundPoints,
        ReleaseReservation,
        Reservation,
        ReserveVoucher,
        VoucherOut,
        WorkflowStep,
    )

# Names of the activities (activities.vouchers registers them; notifications is shared).
RESERVE = "reserve_voucher"
BURN = "burn_voucher_points"
ISSUE = "issue_voucher"
REFUND = "refund_voucher_points"
RELEASE = "release_voucher_reservation"
NOTIFY = "send_notification"

PURCHASE_FAILED = "voucher_purchase_failed"

# Database trouble is retried until it passes (a reservation or a burn must not be abandoned
# half-way); business refusals are non-retryable and end the retries at once.
RETRY_FOREVER = RetryPolicy(
    initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10)
)
# Issuing is retried a few times, then the purchase is undone rather than left hanging.
ISSUE_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=2),
    maximum_attempts=4,
)
NOTIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=1),
    maximum_attempts=3,
)
TIMEOUT = timedelta(seconds=10)


def workflow_id_for(user_id: str, idempotency_key: str) -> str:
    return f"voucher-purchase-{user_id}-{idempotency_key}"


def _refusal(err: ActivityError) -> ApplicationError | None:
    """The business refusal behind an activity failure, if that is what it was."""
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.non_retryable:
        return cause
    return None


def _details(err: ApplicationError) -> dict[str, Any]:
    first = err.details[0] if err.details else None
    return first if isinstance(first, dict) else {}


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
            reservation = await workflow.execute_activity(
                RESERVE,
                ReserveVoucher(
                    user_id=inp.user_id,
                    product_id=inp.product_id,
                    idempotency_key=inp.idempotency_key,
                    run_id=workflow.info().run_id,
                ),
                result_type=Reservation,
                start_to_close_timeout=TIMEOUT,
                retry_policy=RETRY_FOREVER,
                summary=f"reserve one {inp.product_id} for {inp.user_id}",
            )
        except ActivityError as err:
            error = self._refusal_of(err)
            self._record_error(error)
            raise error from err
        self._state.purchase_id = reservation.purchase_id

        if reservation.voucher is not None:  # this key's purchase already completed
            return await self._finish(inp, reservation.voucher)

        burn_tx_id = reservation.burn_tx_id
        if burn_tx_id is None:
            self._step("burning", f"burning {reservation.price_points} points")
            try:
                burned = await workflow.execute_activity(
                    BURN,
                    BurnPoints(
                        purchase_id=reservation.purchase_id,
                        attempt=reservation.attempt,
                        user_id=inp.user_id,
                        points=reservation.price_points,
                        product_name=reservation.product_name,
                    ),
                    result_type=PointsBurned,
                    start_to_close_timeout=TIMEOUT,
                    retry_policy=RETRY_FOREVER,
                    summary=f"burn {reservation.price_points} points of {inp.user_id}",
                )
            except ActivityError as err:
                error = self._refusal_of(err)
                await self._release(reservation, error)
                self._record_error(error)
                raise error from err
            burn_tx_id = burned.tx_id
        self._state.burn_tx_id = burn_tx_id

        self._step("issuing", "issuing the voucher code")
        try:
            voucher = await workflow.execute_activity(
                ISSUE,
                IssueVoucher(purchase_id=reservation.purchase_id),
                result_type=VoucherOut,
                start_to_close_timeout=TIMEOUT,
                retry_policy=ISSUE_RETRY,
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
            await workflow.execute_activity(
                REFUND,
                RefundPoints(
                    purchase_id=reservation.purchase_id,
                    attempt=reservation.attempt,
                    burn_tx_id=burn_tx_id,
                    points=reservation.price_points,
                ),
                result_type=PointsBurned,
                start_to_close_timeout=TIMEOUT,
                retry_policy=RETRY_FOREVER,
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
            await workflow.execute_activity(
                NOTIFY,
                {
                    "idempotency_key": f"voucher-delivered:{voucher.voucher_id}",
                    "kind": "voucher_delivered",
                    "user_id": voucher.user_id,
                    "payload": {
                        "voucher_id": str(voucher.voucher_id),
                        "code": voucher.code,
                        "product_name": voucher.product_name,
                        "expires_at": voucher.expires_at.isoformat()
                        if voucher.expires_at
                        else None,
                    },
                },
                start_to_close_timeout=TIMEOUT,
                retry_policy=NOTIFY_RETRY,
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

    async def _release(self, reservation: Reservation, error: ApplicationError) -> None:
        self._step("compensating", "putting the item back")
        await workflow.execute_activity(
            RELEASE,
            ReleaseReservation(
                purchase_id=reservation.purchase_id,
                attempt=reservation.attempt,
                failure_code=error.type or PURCHASE_FAILED,
                failure_message=error.message,
            ),
            start_to_close_timeout=TIMEOUT,
            retry_policy=RETRY_FOREVER,
            summary=f"release the item of purchase {reservation.purchase_id}",
        )

    @staticmethod
    def _refusal_of(err: ActivityError) -> ApplicationError:
        refusal = _refusal(err)
        if refusal is None:
            return ApplicationError(str(err), type=PURCHASE_FAILED, non_retryable=True)
        return ApplicationError(
            refusal.message, _details(refusal), type=refusal.type, non_retryable=True
        )

    def _record_error(self, error: ApplicationError) -> None:
        self._state.step = "failed"
        self._state.error_code = error.type
        self._state.error_message = error.message
        workflow.set_current_details(f"failed: {error.type}: {error.message}")

    def _step(self, step: WorkflowStep, details: str) -> None:
        self._state.step = step
        workflow.set_current_details(details)
