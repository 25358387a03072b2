"""A purchase refused for a business reason answers with its 4xx and leaves a workflow that
COMPLETED with status `rejected`, never a Failed one: Failed in Temporal means something broke.
The same Idempotency-Key may be retried after a refusal and then buys the voucher."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowExecutionStatus

from loyalty.vouchers.contracts import PurchaseResult, PurchaseState, workflow_id_for
from tests.harness.api import Api
from tests.harness.histories import SaveHistory
from tests.vouchers.conftest import (
    DrainingBurn,
    MakeProduct,
    buy,
    new_key,
    product_counts,
    wallet_of,
)
from workflows.vouchers import VoucherPurchaseWorkflow

MakeWallet = Callable[..., Awaitable[str]]


async def _closed_run(
    client: Client, user: str, key: str
) -> tuple[WorkflowExecutionStatus | None, PurchaseResult, PurchaseState]:
    """The purchase workflow's status in Temporal, its result and its status query."""
    handle = client.get_workflow_handle(workflow_id_for(user, key), result_type=PurchaseResult)
    described = await handle.describe()
    return (
        described.status,
        await handle.result(),
        await handle.query(VoucherPurchaseWorkflow.status),
    )


@pytest.mark.usefixtures("worker")
async def test_sold_out_completes_as_rejected(
    api: Api,
    engine: AsyncEngine,
    make_wallet: MakeWallet,
    make_product: MakeProduct,
    temporal_client: Client,
    save_history: SaveHistory,
) -> None:
    first, second = await make_wallet(1_000), await make_wallet(1_000)
    product = await make_product(price_points=200, inventory=1)
    key = new_key()
    assert (await buy(api, first, product["product_id"])).status_code == 201

    refused = await buy(api, second, product["product_id"], key)

    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "voucher_sold_out"
    status, result, state = await _closed_run(temporal_client, second, key)
    await save_history("rejected", workflow_id_for(second, key))
    assert status == WorkflowExecutionStatus.COMPLETED
    assert (result.status, result.voucher) == ("rejected", None)
    assert result.refusal is not None and result.refusal.code == "voucher_sold_out"
    assert (state.step, state.error_code) == ("rejected", "voucher_sold_out")
    assert (await wallet_of(engine, second)).balance == 1_000

    # The repeat of a refused request is refused again, with the same answer.
    again = await buy(api, second, product["product_id"], key)
    assert (again.status_code, again.json()) == (409, refused.json())


@pytest.mark.usefixtures("worker")
async def test_same_key_buys_once_the_customer_has_the_points(
    api: Api,
    engine: AsyncEngine,
    make_wallet: MakeWallet,
    make_product: MakeProduct,
    temporal_client: Client,
) -> None:
    user = await make_wallet(100)
    product = await make_product(price_points=500, inventory=1)
    key = new_key()

    refused = await buy(api, user, product["product_id"], key)

    assert refused.status_code == 422, refused.text
    assert refused.json()["details"] == {"available": 100, "requested": 500}
    status, result, _ = await _closed_run(temporal_client, user, key)
    assert status == WorkflowExecutionStatus.COMPLETED
    assert result.refusal is not None and result.refusal.code == "insufficient_points"

    credit = await api.http.post(
        f"/wallets/{user}/transactions",
        json={"points": 400, "reason": "goodwill"},
        headers=api.auth.admin(new_key()),
    )
    assert credit.status_code == 201, credit.text
    bought = await buy(api, user, product["product_id"], key)

    assert bought.status_code == 201, bought.text
    status, result, state = await _closed_run(temporal_client, user, key)
    assert status == WorkflowExecutionStatus.COMPLETED
    assert result.status == "completed" and result.voucher is not None
    assert str(result.voucher.voucher_id) == bought.json()["voucher_id"] == str(state.voucher_id)
    # And the key now answers that voucher, without another run.
    repeat = await buy(api, user, product["product_id"], key)
    assert repeat.json() == bought.json()
    assert (await wallet_of(engine, user)).balance == 0
    counts = await product_counts(engine, product["product_id"])
    assert (counts.inventory_taken, counts.vouchers, counts.purchases) == (1, 1, {"completed": 1})


async def test_burn_refused_completes_as_rejected_with_the_item_back(
    api: Api,
    engine: AsyncEngine,
    make_wallet: MakeWallet,
    make_product: MakeProduct,
    fault_worker: Callable[..., Any],
    temporal_client: Client,
    save_history: SaveHistory,
) -> None:
    user = await make_wallet(1_000)
    product = await make_product(price_points=400, inventory=1)
    key = new_key()

    async with fault_worker(burn=DrainingBurn(engine).burn):
        response = await buy(api, user, product["product_id"], key)
        status, result, state = await _closed_run(temporal_client, user, key)
        await save_history("burn_rejected", workflow_id_for(user, key))

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "insufficient_points"
    assert status == WorkflowExecutionStatus.COMPLETED
    assert result.refusal is not None and result.refusal.code == "insufficient_points"
    assert (state.step, state.error_code) == ("rejected", "insufficient_points")
    counts = await product_counts(engine, product["product_id"])
    assert (counts.inventory_taken, counts.vouchers, counts.purchases) == (0, 0, {"failed": 1})
