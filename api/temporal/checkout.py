"""The client side of the redemption saga, shared by the API and the tests: redeem (update-with-
start), confirm / release, Stripe payment news, status.

Repeated redeem calls for one booking get the same answer and create nothing new:
- the update id is the booking id plus a fingerprint of the request, so an identical retry
  attaches to the first update and gets its stored result (or stored refusal), while the saga
  runs and after it has ended;
- after the saga completed (captured or released), the id reuse policy ALLOW_DUPLICATE_FAILED_ONLY
  refuses a new run, and a request the server has no stored update for is answered from the
  completed run's result;
- a saga that ended without a hold (its request refused) ends as failed, so a corrected request
  for the same booking starts afresh. (With the bare booking id as update id, Temporal answers
  every later call with the closed run's stored refusal: the booking could never be retried.)
A request that differs from the one the saga answered is a RedemptionConflict (409)."""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta
from typing import Literal

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from loyalty.core import search_attributes as sa
from loyalty.core.errors import NotFound
from loyalty.core.refusals import as_loyalty_error
from loyalty.core.settings import Settings
from loyalty.redemption.contracts import (
    BookingDecision,
    PaymentEvent,
    RedeemRequest,
    RedemptionHold,
    RedemptionInput,
    RedemptionState,
    workflow_id_for,
)
from loyalty.redemption.errors import RedemptionConflict, RedemptionRejected
from loyalty.redemption.rules import same_request, update_id_for
from workflows.redemption import RedemptionWorkflow

log = logging.getLogger(__name__)

PaymentNews = Literal["payment_succeeded", "payment_failed", "payment_canceled"]


def _check_same(answer: RedemptionHold, request: RedeemRequest) -> RedemptionHold:
    if not same_request(answer.request, request):
        raise RedemptionConflict(
            f"booking {request.booking_id} already has a redemption with a different request",
            booking_id=request.booking_id,
            existing=answer.request.model_dump(),
        )
    return answer


async def redeem(
    client: Client, settings: Settings, request: RedeemRequest, *, task_queue: str | None = None
) -> RedemptionHold:
    """Place the hold (starting the saga if needed) and return it; LoyaltyError on refusal."""
    workflow_id = workflow_id_for(request.booking_id)
    operation = WithStartWorkflowOperation(
        RedemptionWorkflow.run,
        RedemptionInput(
            user_id=request.user_id,
            booking_id=request.booking_id,
            currency=settings.currency,
            hold_ttl_seconds=settings.hold_ttl_seconds,
            saga_version=settings.redemption_saga_version,
        ),
        id=workflow_id,
        task_queue=task_queue or settings.temporal_task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(sa.LOYALTY_USER_ID, request.user_id),
                SearchAttributePair(sa.BOOKING_ID, request.booking_id),
                SearchAttributePair(sa.REDEMPTION_STATUS, "pending"),
            ]
        ),
        static_summary=(
            f"Checkout {request.booking_id}: {request.points} points of {request.user_id} "
            f"on {request.order_amount} {request.currency}"
        ),
    )
    try:
        answer = await client.execute_update_with_start_workflow(
            RedemptionWorkflow.redeem,
            request,
            start_workflow_operation=operation,
            id=update_id_for(request),
        )
    except WorkflowUpdateFailedError as err:
        raise as_loyalty_error(err, RedemptionRejected) from err
    except WorkflowAlreadyStartedError:
        # The saga for this booking already completed: answer from its result.
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await operation.workflow_handle()  # the same refusal; retrieved so it is not logged
        state = await client.get_workflow_handle(workflow_id, result_type=RedemptionState).result()
        if state.hold is None:  # a completed run always held; guard against a corrupt result
            raise NotFound(f"no redemption answer for booking {request.booking_id}") from None
        return _check_same(state.hold, request)
    return _check_same(answer, request)


# A query needs a worker; without one the server holds it until this deadline.
QUERY_TIMEOUT = timedelta(seconds=3)


async def describe(client: Client, booking_id: str) -> WorkflowExecutionDescription:
    """The saga's execution as the server knows it; answered with no worker running."""
    try:
        return await client.get_workflow_handle(workflow_id_for(booking_id)).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise NotFound(
                f"no redemption for booking {booking_id}", booking_id=booking_id
            ) from err
        raise


def owner_of(description: WorkflowExecutionDescription) -> str | None:
    """The wallet a saga belongs to (set when it starts, so known before any worker ran it)."""
    return description.typed_search_attributes.get(sa.LOYALTY_USER_ID)


def _state_without_worker(description: WorkflowExecutionDescription) -> RedemptionState:
    attributes = description.typed_search_attributes
    status = attributes.get(sa.REDEMPTION_STATUS) or "pending"
    return RedemptionState(
        workflow_id=description.id,
        booking_id=attributes.get(sa.BOOKING_ID) or "",
        user_id=owner_of(description) or "",
        status=status,  # pydantic checks it is one of Status
        waiting_for="a worker: the saga resumes where it stopped when one is running",
    )


async def state(client: Client, booking_id: str) -> RedemptionState:
    """The saga's current state: its result once it has ended, else the `status` query, or
    (no worker answering) what its search attributes say."""
    description = await describe(client, booking_id)
    handle = client.get_workflow_handle(description.id, result_type=RedemptionState)
    if description.status == WorkflowExecutionStatus.COMPLETED:
        return await handle.result()
    try:
        return await handle.query(RedemptionWorkflow.status, rpc_timeout=QUERY_TIMEOUT)
    except RPCError as err:
        # The server answers DEADLINE_EXCEEDED; when the client's deadline fires first the SDK
        # raises CANCELLED ("Timeout expired"). Either way no worker answered in time.
        if err.status not in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
            raise
        log.warning("no worker answered the status query of %s", description.id)
        return _state_without_worker(description)


async def decide(
    client: Client, booking_id: str, decision: Literal["confirm", "release"], reason: str | None
) -> RedemptionState:
    """Send the booking service's confirm or release; answer with the saga's state (which may
    not show the decision's effect yet: the saga acts on it asynchronously). Accepted while no
    worker runs: the signal waits in the saga's history."""
    handle = client.get_workflow_handle(workflow_id_for(booking_id))
    signal = RedemptionWorkflow.confirm if decision == "confirm" else RedemptionWorkflow.release
    try:
        await handle.signal(signal, BookingDecision(reason=reason))
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:  # NOT_FOUND: unknown, or already ended
            raise
    return await state(client, booking_id)


async def payment_news(
    client: Client, workflow_id: str, news: PaymentNews, event: PaymentEvent
) -> bool:
    """Signal Stripe's news to the saga named in the PaymentIntent's metadata. False when that
    saga does not exist or has already ended (nothing to do)."""
    handle = client.get_workflow_handle(workflow_id)
    signal = {
        "payment_succeeded": RedemptionWorkflow.payment_succeeded,
        "payment_failed": RedemptionWorkflow.payment_failed,
        "payment_canceled": RedemptionWorkflow.payment_canceled,
    }[news]
    try:
        await handle.signal(signal, event)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            log.info("no running saga %s for %s of %s", workflow_id, news, event.payment_intent_id)
            return False
        raise
    return True
