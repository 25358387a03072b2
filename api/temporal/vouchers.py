"""The client side of VoucherPurchaseWorkflow, shared by the API and the tests.

`purchase` starts the workflow for (customer, idempotency key), or attaches to it, and waits for
its answer:
- running: the call attaches (conflict policy USE_EXISTING) and gets the same answer;
- completed with a voucher: the id reuse policy ALLOW_DUPLICATE_FAILED_ONLY refuses a new run,
  and the answer is read from the completed run, so a repeat returns the same voucher;
- completed as `rejected` (a business refusal: sold out, not enough points ...): a new run
  starts, so the same key can be retried once the customer has enough points;
- failed (undone after a fault; or refused, in runs from before refusals completed): a new run
  starts as well.
A refusal is raised as the LoyaltyError it was (same code and status). An answer for another
product (or customer) under the same workflow id is an idempotency conflict (409). The database
keys purchases by the same (customer, key), so the guarantee outlives the workflow's retention
in Temporal."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from loyalty.core import search_attributes as sa
from loyalty.core.errors import IdempotencyConflict, LoyaltyError
from loyalty.core.refusals import as_loyalty_error
from loyalty.vouchers.contracts import (
    PurchaseInput,
    PurchaseRefusal,
    PurchaseResult,
    VoucherOut,
    workflow_id_for,
)
from loyalty.vouchers.rules import VoucherPurchaseFailed, VoucherPurchasePending
from workflows.vouchers import VoucherPurchaseWorkflow

DEFAULT_WAIT_SECONDS = 30.0


def domain_error(err: WorkflowFailureError) -> LoyaltyError:
    """The LoyaltyError a failed purchase workflow reported (its ApplicationError type)."""
    return as_loyalty_error(err, VoucherPurchaseFailed)


def refusal_error(refusal: PurchaseRefusal) -> LoyaltyError:
    """The LoyaltyError of a rejected purchase's result."""
    cls = LoyaltyError.for_code(refusal.code) or VoucherPurchaseFailed
    return cls(refusal.message, **refusal.details)


async def purchase(
    client: Client,
    *,
    user_id: str,
    product_id: uuid.UUID,
    idempotency_key: str,
    task_queue: str,
    wait_seconds: float = DEFAULT_WAIT_SECONDS,
) -> VoucherOut:
    """Buy one voucher (or get the one already bought with this key); LoyaltyError on refusal."""
    workflow_id = workflow_id_for(user_id, idempotency_key)
    inp = PurchaseInput(user_id=user_id, product_id=product_id, idempotency_key=idempotency_key)
    handle = await _start(
        client, inp, task_queue, WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY
    )
    if handle is None:  # a run completed before: its answer, unless it was a refusal
        completed = client.get_workflow_handle(workflow_id, result_type=PurchaseResult)
        result = await _result(completed, workflow_id, wait_seconds)
        if result.status == "rejected":  # a refusal may be retried under its key: a new run
            handle = await _start(client, inp, task_queue, WorkflowIDReusePolicy.ALLOW_DUPLICATE)
    if handle is not None:
        result = await _result(handle, workflow_id, wait_seconds)
    if result.user_id != user_id or result.product_id != product_id:
        raise IdempotencyConflict(
            "this idempotency key was already used to buy another voucher",
            idempotency_key=idempotency_key,
        )
    if result.refusal is not None:
        raise refusal_error(result.refusal)
    if result.voucher is None:  # a completed purchase always has its voucher
        raise VoucherPurchaseFailed("the purchase ended without a voucher", workflow_id=workflow_id)
    return result.voucher


async def _start(
    client: Client, inp: PurchaseInput, task_queue: str, reuse: WorkflowIDReusePolicy
) -> WorkflowHandle[VoucherPurchaseWorkflow, PurchaseResult] | None:
    """Start the purchase's run, or attach to the running one; None when `reuse` refuses a new
    run after a closed one."""
    try:
        return await client.start_workflow(
            VoucherPurchaseWorkflow.run,
            inp,
            id=workflow_id_for(inp.user_id, inp.idempotency_key),
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=reuse,
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(sa.LOYALTY_USER_ID, inp.user_id)]
            ),
            static_summary=(
                f"Voucher {inp.product_id} for {inp.user_id} (key {inp.idempotency_key})"
            ),
        )
    except WorkflowAlreadyStartedError:
        return None


async def _result(
    handle: WorkflowHandle[Any, PurchaseResult],
    workflow_id: str,
    wait_seconds: float,
) -> PurchaseResult:
    try:
        async with asyncio.timeout(wait_seconds):
            return await handle.result()
    except WorkflowFailureError as err:
        raise domain_error(err) from err
    except TimeoutError as err:
        raise VoucherPurchasePending(
            "the purchase is still in progress; retry with the same Idempotency-Key",
            workflow_id=workflow_id,
        ) from err
