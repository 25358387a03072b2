"""The client side of the redemption saga, shared by the API and the tests: redeem (update-with-
start), confirm / release, Stripe payment news, status.

One booking's checkouts are runs of one workflow, `redemption-{booking_id}`; at most one runs at
a time. A redeem first looks at the booking's latest run:
- none, or one still running: update-with-start attaches to it (id conflict policy USE_EXISTING)
  or starts the first. Repeated identical calls get the same answer and create nothing new: the
  update id is the booking plus a fingerprint of the request, so a retry attaches to the first
  update's stored outcome (and the saga answers an identical request that reaches it as another
  update with its first answer). Another request is a RedemptionConflict (409). A run that is
  being settled refuses the update (`redemption_ending`): the call waits for it to end and looks
  again, as it does when the run it attached to ended right after answering.
- one that ended with a capture: the booking is paid, RedemptionCaptured (409).
- one that ended otherwise (released, expired, payment cancelled, refused, failed): a new run
  starts (id reuse policy ALLOW_DUPLICATE) with a new hold, told which run it follows; its hold
  is refused if a capture for the booking landed meanwhile. The answer is never an ended run's.
A run is never started over a closed one by accident: without a closed run to follow, the reuse
policy is REJECT_DUPLICATE, and a run that closed in between is looked at again."""

from __future__ import annotations

import asyncio
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
from loyalty.observability import tracing
from loyalty.redemption.contracts import (
    BookingDecision,
    PaymentEvent,
    RedeemRequest,
    RedemptionHold,
    RedemptionInput,
    RedemptionState,
    workflow_id_for,
)
from loyalty.redemption.errors import (
    RedemptionCaptured,
    RedemptionConflict,
    RedemptionEnding,
    RedemptionRejected,
)
from loyalty.redemption.rules import FINAL_STATUS_CAPTURED, same_request, update_id_for
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


# How often a redeem looks again at a booking whose latest run changed under it, and how long it
# waits for a run that is being settled to end before answering `redemption_ending`.
LOOKS = 4
ENDING_WAIT = timedelta(seconds=15)


async def redeem(
    client: Client, settings: Settings, request: RedeemRequest, *, task_queue: str | None = None
) -> RedemptionHold:
    """Place the hold (starting the booking's saga run if needed) and return it; LoyaltyError
    on refusal."""
    workflow_id = workflow_id_for(request.booking_id)
    tracing.annotate(booking_id=request.booking_id, workflow_id=workflow_id)
    for look in range(1, LOOKS + 1):
        latest = await _latest_run(client, workflow_id)
        running = latest is not None and latest.status == WorkflowExecutionStatus.RUNNING
        previous_run: str | None = None
        if latest is not None and not running:
            await _check_restartable(client, latest, request.booking_id)
            previous_run = latest.run_id
        try:
            answer = await _update_with_start(client, settings, request, task_queue, previous_run)
        except RedemptionEnding:
            if latest is None or look == LOOKS:
                raise
            await _wait_for_end(client, workflow_id, latest.run_id)
            continue
        except WorkflowAlreadyStartedError:
            # The run it meant to attach to closed meanwhile (REJECT_DUPLICATE): look again.
            log.info("the latest run of %s changed; looking again", workflow_id)
            continue
        if running and not await _still_running(client, workflow_id, answer.run_id):
            continue  # it ended right after answering: its hold is no longer live
        return answer
    raise RedemptionEnding(
        f"the checkout of booking {request.booking_id} keeps changing; try again",
        booking_id=request.booking_id,
    )


async def _still_running(client: Client, workflow_id: str, run_id: str | None) -> bool:
    described = await client.get_workflow_handle(workflow_id, run_id=run_id).describe()
    return described.status == WorkflowExecutionStatus.RUNNING


async def _latest_run(client: Client, workflow_id: str) -> WorkflowExecutionDescription | None:
    try:
        return await client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


async def _check_restartable(
    client: Client, closed: WorkflowExecutionDescription, booking_id: str
) -> None:
    """RedemptionCaptured when the closed run captured the booking's points."""
    if closed.status != WorkflowExecutionStatus.COMPLETED:
        return  # failed (saga version 2's refusals), terminated ...: it captured nothing
    handle = client.get_workflow_handle(
        closed.id, run_id=closed.run_id, result_type=RedemptionState
    )
    ended = await handle.result(follow_runs=False)
    if ended.status == FINAL_STATUS_CAPTURED:
        raise RedemptionCaptured(
            f"booking {booking_id} was already paid with points; its checkout is over",
            booking_id=booking_id,
            run_id=closed.run_id,
            points=ended.hold.points_held if ended.hold else None,
        )


async def _wait_for_end(client: Client, workflow_id: str, run_id: str) -> None:
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(ENDING_WAIT.total_seconds()):
            with contextlib.suppress(Exception):  # how it ended is read by the next look
                await handle.result(follow_runs=False)
            return
    log.warning("the checkout run %s of %s is still being settled", run_id, workflow_id)


async def _update_with_start(
    client: Client,
    settings: Settings,
    request: RedeemRequest,
    task_queue: str | None,
    previous_run: str | None,
) -> RedemptionHold:
    operation = WithStartWorkflowOperation(
        RedemptionWorkflow.run,
        RedemptionInput(
            user_id=request.user_id,
            booking_id=request.booking_id,
            currency=settings.currency,
            hold_ttl_seconds=settings.hold_ttl_seconds,
            saga_version=settings.redemption_saga_version,
            payment_grace_seconds=settings.redemption_payment_grace_seconds,
            previous_run_id=previous_run,
        ),
        id=workflow_id_for(request.booking_id),
        task_queue=task_queue or settings.temporal_task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE
        if previous_run is not None
        else WorkflowIDReusePolicy.REJECT_DUPLICATE,
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
    # A new run after a closed one gets update ids of its own: the server answers an update id
    # it finds in the closed run with that run's stored outcome.
    run = f"after-{previous_run}" if previous_run is not None else None
    try:
        answer = await client.execute_update_with_start_workflow(
            RedemptionWorkflow.redeem,
            request,
            start_workflow_operation=operation,
            id=update_id_for(request, run),
        )
    except WorkflowUpdateFailedError as err:
        raise as_loyalty_error(err, RedemptionRejected) from err
    except WorkflowAlreadyStartedError:
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await operation.workflow_handle()  # the same error; retrieved so it is not logged
        raise
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
    tracing.annotate(booking_id=booking_id, workflow_id=workflow_id_for(booking_id))
    handle = client.get_workflow_handle(workflow_id_for(booking_id))
    signal = RedemptionWorkflow.confirm if decision == "confirm" else RedemptionWorkflow.release
    try:
        await handle.signal(signal, BookingDecision(reason=reason))
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:  # NOT_FOUND: unknown, or already ended
            raise
    return await state(client, booking_id)


async def payment_news(
    client: Client,
    workflow_id: str,
    news: PaymentNews,
    event: PaymentEvent,
    *,
    run_id: str | None = None,
) -> bool:
    """Signal Stripe's news to the saga run named in the PaymentIntent's metadata (the latest
    run when it names none). False when that run does not exist or has already ended (nothing
    to do: a booking's later run has a PaymentIntent of its own)."""
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
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
