"""The client side of VoucherPurchaseWorkflow, shared by the API and the tests.

`purchase` starts the workflow for (customer, idempotency key), or attaches to it, and waits for
its answer:
- running: the call attaches (conflict policy USE_EXISTING) and gets the same answer;
- completed: the id reuse policy ALLOW_DUPLICATE_FAILED_ONLY refuses a new run, and the answer
  is read from the completed run, so a repeat returns the same voucher;
- failed (refused, or undone after a failure): a new run starts, so the same key can be retried
  once the customer has enough points or the fault is gone.
An answer for another product (or customer) under the same workflow id is an idempotency
conflict (409). The database keys purchases by the same (customer, key), so the guarantee
outlives the workflow's retention in Temporal."""

from __future__ import annotations

import asyncio
import uuid

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
from loyalty.vouchers.contracts import PurchaseInput, PurchaseResult, workflow_id_for
from loyalty.vouchers.rules import VoucherPurchaseFailed, VoucherPurchasePending
from workflows.vouchers import VoucherPurchaseWorkflow

DEFAULT_WAIT_SECONDS = 30.0


def domain_error(err: WorkflowFailureError) -> LoyaltyError:
    """The LoyaltyError a failed purchase workflow reported (its ApplicationError type)."""
    return as_loyalty_error(err, VoucherPurchaseFailed)


async def purchase(
    client: Client,
    *,
    user_id: str,
    product_id: uuid.UUID,
    idempotency_key: str,
    task_queue: str,
    wait_seconds: float = DEFAULT_WAIT_SECONDS,
) -> PurchaseResult:
    """Buy one voucher (or get the answer already given for this key); LoyaltyError on refusal."""
    workflow_id = workflow_id_for(user_id, idempotency_key)
    handle: WorkflowHandle[VoucherPurchaseWorkflow, PurchaseResult]
    try:
        handle = await client.start_workflow(
            VoucherPurchaseWorkflow.run,
            PurchaseInput(user_id=user_id, product_id=product_id, idempotency_key=idempotency_key),
            id=workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(sa.LOYALTY_USER_ID, user_id)]
            ),
            static_summary=f"Voucher {product_id} for {user_id} (key {idempotency_key})",
        )
    except WorkflowAlreadyStartedError:  # completed before: answer from that run
        handle = client.get_workflow_handle(workflow_id, result_type=PurchaseResult)
    try:
        async with asyncio.timeout(wait_seconds):
            result = await handle.result()
    except WorkflowFailureError as err:
        raise domain_error(err) from err
    except TimeoutError as err:
        raise VoucherPurchasePending(
            "the purchase is still in progress; retry with the same Idempotency-Key",
            workflow_id=workflow_id,
        ) from err
    if result.user_id != user_id or result.product_id != product_id:
        raise IdempotencyConflict(
            "this idempotency key was already used to buy another voucher",
            idempotency_key=idempotency_key,
        )
    return result
