"""Buying vouchers end to end: HTTP (the FastAPI app over ASGITransport) -> Temporal (the dev
server, an in-process worker) -> PostgreSQL (the ledger and the voucher tables)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from loyalty.core.settings import Settings
from loyalty.vouchers.contracts import workflow_id_for
from tests.harness import workers
from tests.harness.api import Api
from tests.harness.histories import SaveHistory
from tests.vouchers.conftest import (
    DrainingBurn,
    FailingIssue,
    MakeProduct,
    buy,
    new_key,
    product_counts,
    wallet_of,
)
from workflows.vouchers import VoucherPurchaseWorkflow

MakeWallet = Callable[..., Awaitable[str]]

CODE = re.compile(r"^[A-HJ-NP-Z2-9]{4}(-[A-HJ-NP-Z2-9]{4}){3}$")


@pytest.mark.usefixtures("worker")
async def test_purchase_end_to_end(
    api: Api,
    engine: AsyncEngine,
    make_wallet: MakeWallet,
    make_product: MakeProduct,
    temporal_client: Client,
    save_history: SaveHistory,
) -> None:
    user = await make_wallet(1_000)
    product = await make_product(price_points=400, inventory=3, voucher_valid_days=30)
    key = new_key()

    response = await buy(api, user, product["product_id"], key)

    assert response.status_code == 201, response.text
    voucher = response.json()
    assert CODE.match(voucher["code"]), voucher["code"]
    assert voucher["status"] == "active"
    assert voucher["price_points"] == 400
    assert voucher["user_id"] == user
    assert voucher["expires_at"] is not None
    await save_history("completed", workflow_id_for(user, key))
    # Only the wallet's owner (or the service) buys with it.
    stranger = await api.http.post(
        f"/wallets/{user}/vouchers",
        json={"product_id": product["product_id"]},
        headers=api.auth.customer("someone-else", new_key()),
    )
    assert stranger.status_code == 403
    view = await wallet_of(engine, user)
    assert view.balance == 600
    assert view.postings[-1] == ("burn", -400, "voucher_sales")
    counts = await product_counts(engine, product["product_id"])
    assert (counts.inventory_taken, counts.vouchers, counts.purchases) == (1, 1, {"completed": 1})

    # The customer was told, once, through the notification outbox.
    async with engine.connect() as conn:
        notes = (
            await conn.execute(
                text(
                    "SELECT kind, payload->>'code' FROM notification_outbox "
                    "WHERE user_id = :u AND channel = 'notify'"
                ),
                {"u": user},
            )
        ).all()
    assert [tuple(n) for n in notes] == [("voucher_delivered", voucher["code"])]

    # Operators find it by id and read its state from the status query.
    handle = temporal_client.get_workflow_handle(workflow_id_for(user, key))
    state = await handle.query(VoucherPurchaseWorkflow.status)
    assert state.step == "completed"
    assert str(state.voucher_id) == voucher["voucher_id"]

    listed = await api.http.get(f"/wallets/{user}/vouchers", headers=api.customer(user))
    assert listed.status_code == 200
    assert [v["code"] for v in listed.json()["items"]] == [voucher["code"]]

    # The service marks it used; a repeat with the same reference replays, another is refused.
    use = f"/wallets/{user}/vouchers/{voucher['voucher_id']}/use"
    used = await api.http.post(use, json={"reference": "bk-1"}, headers=api.service)
    assert used.status_code == 200, used.text
    assert used.json()["status"] == "used"
    again = await api.http.post(use, json={"reference": "bk-1"}, headers=api.service)
    assert again.status_code == 200
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = await api.http.post(use, json={"reference": "bk-2"}, headers=api.service)
    assert other.status_code == 409
    assert other.json()["code"] == "voucher_not_usable"
    # A customer cannot mark their own voucher used.
    self_use = await api.http.post(use, json={}, headers=api.customer(user))
    assert self_use.status_code == 403

    by_status = await api.http.get(
        f"/wallets/{user}/vouchers", params={"status": "active"}, headers=api.customer(user)
    )
    assert by_status.json()["items"] == []
    used_list = await api.http.get(
        f"/wallets/{user}/vouchers", params={"status": "used"}, headers=api.customer(user)
    )
    assert [v["voucher_id"] for v in used_list.json()["items"]] == [voucher["voucher_id"]]


@pytest.mark.usefixtures("worker")
async def test_same_key_returns_the_same_voucher_and_burns_once(
    api: Api,
    engine: AsyncEngine,
    make_wallet: MakeWallet,
    make_product: MakeProduct,
) -> None:
    user = await make_wallet(2_000)
    product = await make_product(price_points=300)
    other = await make_product(price_points=300)
    key = new_key()

    first = await buy(api, user, product["product_id"], key)
    # Concurrent repeats while it may still run, and repeats after it completed.
    repeats = await asyncio.gather(*(buy(api, user, product["product_id"], key) for _ in range(3)))
    later = await buy(api, user, product["product_id"], key)

    assert first.status_code == 201, first.text
    for response in [*repeats, later]:
        assert response.status_code == 201, response.text
        assert response.json() == first.json()
    view = await wallet_of(engine, user)
    assert view.balance == 1_700
    assert [p for p in view.postings if p[0] == "burn"] == [("burn", -300, "voucher_sales")]

    # The same key for another product is a conflict, and changes nothing.
    conflict = await buy(api, user, other["product_id"], key)
    assert conflict.status_code == 409, conflict.text
    assert conflict.json()["code"] == "idempotency_conflict"
    assert (await wallet_of(engine, user)).balance == 1_700
    assert (await product_counts(engine, other["product_id"])).inventory_taken == 0


@pytest.mark.usefixtures("worker")
async def test_insufficient_points_is_a_clear_4xx_and_changes_nothing(
    api: Api,
    engine: AsyncEngine,
    make_wallet: MakeWallet,
    make_product: MakeProduct,
) -> None:
    user = await make_wallet(100)
    product = await make_product(price_points=500, inventory=1)
    before = await wallet_of(engine, user)

    response = await buy(api, user, product["product_id"])

    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "insufficient_points"
    assert body["details"] == {"available": 100, "requested": 500}
    assert await wallet_of(engine, user) == before
    counts = await product_counts(engine, product["product_id"])
    assert (counts.inventory_taken, counts.vouchers, counts.purchases, counts.counters) == (
        0,
        0,
        {},
        0,
    )


@pytest.mark.usefixtures("worker")
async def test_sold_out(
    api: Api,
    engine: AsyncEngine,
    make_wallet: MakeWallet,
    make_product: MakeProduct,
) -> None:
    first, second = await make_wallet(1_000), await make_wallet(1_000)
    product = await make_product(price_points=200, inventory=1)

    assert (await buy(api, first, product["product_id"])).status_code == 201
    refused = await buy(api, second, product["product_id"])

    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "voucher_sold_out"
    assert (await wallet_of(engine, second)).balance == 1_000
    shown = await api.http.get(
        f"/vouchers/products/{product['product_id']}", headers=api.customer(second)
    )
    assert shown.json()["inventory_left"] == 0


@pytest.mark.usefixtures("worker")
async def test_tier_too_low(
    api: Api,
    engine: AsyncEngine,
    make_wallet: MakeWallet,
    make_product: MakeProduct,
) -> None:
    user = await make_wallet(1_000)  # a new wallet is bronze
    product = await make_product(price_points=200, min_tier="gold")

    response = await buy(api, user, product["product_id"])

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "tier_too_low"
    assert response.json()["details"] == {"min_tier": "gold", "tier": "bronze"}
    assert (await wallet_of(engine, user)).balance == 1_000
    assert (await product_counts(engine, product["product_id"])).inventory_taken == 0


@pytest.mark.usefixtures("worker")
async def test_per_customer_limit_holds_under_a_race(
    api: Api,
    engine: AsyncEngine,
    make_wallet: MakeWallet,
    make_product: MakeProduct,
) -> None:
    user = await make_wallet(10_000)
    product = await make_product(price_points=100, per_customer_limit=2)

    responses = await asyncio.gather(*(buy(api, user, product["product_id"]) for _ in range(6)))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 201, 409, 409, 409, 409], [r.text for r in responses]
    refusals = {r.json()["code"] for r in responses if r.status_code == 409}
    assert refusals == {"voucher_limit_reached"}
    assert (await wallet_of(engine, user)).balance == 9_800
    counts = await product_counts(engine, product["product_id"])
    assert (counts.inventory_taken, counts.vouchers, counts.counters) == (2, 2, 2)


@pytest.mark.usefixtures("worker")
async def test_fifty_buyers_race_for_five_items(
    api: Api,
    engine: AsyncEngine,
    make_wallet: MakeWallet,
    make_product: MakeProduct,
) -> None:
    buyers = [await make_wallet(1_000) for _ in range(50)]
    product = await make_product(price_points=250, inventory=5)
    gate = asyncio.Semaphore(10)  # a 2-core dev server: bounded concurrent workflow starts

    async def attempt(user: str) -> httpx.Response:
        async with gate:
            return await buy(api, user, product["product_id"])

    responses = await asyncio.gather(*(attempt(u) for u in buyers))

    winners = [u for u, r in zip(buyers, responses, strict=True) if r.status_code == 201]
    refusals = [r for r in responses if r.status_code != 201]
    assert len(winners) == 5, [r.text for r in responses]
    assert len(refusals) == 45
    assert {(r.status_code, r.json()["code"]) for r in refusals} == {(409, "voucher_sold_out")}
    codes = {r.json()["code"] for r in responses if r.status_code == 201}
    assert len(codes) == 5
    for user in buyers:
        expected = 750 if user in winners else 1_000
        assert (await wallet_of(engine, user)).balance == expected, user
    counts = await product_counts(engine, product["product_id"])
    assert (counts.inventory_taken, counts.vouchers, counts.purchases) == (5, 5, {"completed": 5})


async def test_failure_between_burn_and_issue_is_compensated(
    api: Api,
    engine: AsyncEngine,
    make_wallet: MakeWallet,
    make_product: MakeProduct,
    fault_worker: Callable[..., Any],
    temporal_client: Client,
    settings: Settings,
    save_history: SaveHistory,
) -> None:
    user = await make_wallet(1_000)
    product = await make_product(price_points=400, inventory=1)
    key = new_key()
    failing = FailingIssue()

    async with fault_worker(issue=failing.issue):
        response = await buy(api, user, product["product_id"], key)
        # A query needs a worker, even on a closed workflow.
        state = await temporal_client.get_workflow_handle(workflow_id_for(user, key)).query(
            VoucherPurchaseWorkflow.status
        )
        await save_history("compensated", workflow_id_for(user, key))

    assert response.status_code == 503, response.text
    assert response.json()["code"] == "voucher_purchase_failed"
    assert failing.attempts == 4  # the workflow's issue retry policy ran out first
    view = await wallet_of(engine, user)
    assert view.balance == 1_000
    assert [(t, a) for t, a, _ in view.postings[-2:]] == [("burn", -400), ("refund", 400)]
    counts = await product_counts(engine, product["product_id"])
    assert (counts.inventory_taken, counts.vouchers, counts.counters) == (0, 0, 0)
    assert counts.purchases == {"failed": 1}
    assert (state.step, state.error_code) == ("failed", "voucher_purchase_failed")

    # Once the fault is gone the same key buys the voucher: the item was really put back.
    async with workers.in_process(temporal_client, engine, settings):
        retried = await buy(api, user, product["product_id"], key)
    assert retried.status_code == 201, retried.text
    assert (await wallet_of(engine, user)).balance == 600
    counts = await product_counts(engine, product["product_id"])
    assert (counts.inventory_taken, counts.vouchers, counts.purchases) == (1, 1, {"completed": 1})


async def test_burn_refused_after_reservation_puts_the_item_back(
    api: Api,
    engine: AsyncEngine,
    make_wallet: MakeWallet,
    make_product: MakeProduct,
    fault_worker: Callable[..., Any],
) -> None:
    user = await make_wallet(1_000)
    product = await make_product(price_points=400, inventory=1, per_customer_limit=1)

    async with fault_worker(burn=DrainingBurn(engine).burn):
        response = await buy(api, user, product["product_id"])

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "insufficient_points"
    view = await wallet_of(engine, user)
    assert view.balance == 0
    assert [t for t, _, _ in view.postings] == ["earn", "adjustment"]  # nothing burned
    counts = await product_counts(engine, product["product_id"])
    assert (counts.inventory_taken, counts.vouchers, counts.counters) == (0, 0, 0)
    assert counts.purchases == {"failed": 1}
