"""The reconciliation against the real parts (PostgreSQL, the Temporal dev server with the
test's worker, localstripe): after real checkouts and a real voucher purchase it finds nothing;
mismatches planted the way they happen are found, each once, even when its batch runs again;
the walk continues as new and ends with the same counts as a walk in one run; operators list
the findings over the API."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import stripe
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.reconciliation import ReconciliationActivities
from api.temporal import checkout
from loyalty.core.settings import Settings
from loyalty.reconciliation import sagas
from loyalty.reconciliation.contracts import (
    FINDING_KINDS,
    ReconcileBatch,
    ReconciliationProgress,
    ReconciliationResult,
)
from loyalty.redemption.contracts import workflow_id_for
from tests.harness.api import Api
from tests.harness.histories import SaveHistory
from tests.harness.waits import within
from tests.reconciliation.helpers import (
    decided_checkout,
    ended,
    findings_of,
    hold_for,
    new_booking,
    paid_checkout,
    planted_settlement,
    purchase_of,
    reconcile,
    release_hold,
)
from tests.redemption.helpers import pay
from workflows.reconciliation import ReconciliationWorkflow

pytestmark = pytest.mark.usefixtures("worker")

MakeWallet = Callable[..., Awaitable[str]]


async def buy_voucher(api: Api, user: str) -> None:
    product = await api.http.post(
        "/vouchers/products",
        json={"name": f"Voucher {uuid.uuid4().hex[:6]}", "price_points": 500},
        headers=api.admin,
    )
    assert product.status_code == 201, product.text
    bought = await api.http.post(
        f"/wallets/{user}/vouchers",
        json={"product_id": product.json()["product_id"]},
        headers=api.auth.customer(user, f"key-{uuid.uuid4().hex}"),
    )
    assert bought.status_code == 201, bought.text


def _counted() -> dict[str, float]:
    """loyalty_reconciliation_findings_total per kind, in this process."""
    [family] = [m for m in REGISTRY.collect() if m.name == "loyalty_reconciliation_findings"]
    return {s.labels["kind"]: s.value for s in family.samples if s.name.endswith("_total")}


@pytest.fixture
async def open_holds(engine: AsyncEngine) -> AsyncIterator[list[str]]:
    """Holds a test leaves open on purpose; released afterwards, before they expire."""
    holds: list[str] = []
    yield holds
    for hold_id in holds:
        await release_hold(engine, hold_id)


async def test_a_clean_run_finds_nothing_after_real_checkouts(
    temporal_client: Client,
    settings: Settings,
    engine: AsyncEngine,
    stripe_client: stripe.StripeClient,
    make_wallet: MakeWallet,
    api: Api,
    save_history: SaveHistory,
) -> None:
    user = await make_wallet(200_000)
    gold = await make_wallet(50_000, tier="gold")
    paid = await paid_checkout(temporal_client, settings, stripe_client, user, new_booking())
    released = await decided_checkout(temporal_client, settings, user, new_booking(), "release")
    all_points = await decided_checkout(
        temporal_client, settings, gold, new_booking(), "confirm", order=40_000, points=40_000
    )
    assert all_points.payment_intent_id is None
    await buy_voucher(api, user)
    purchase = await purchase_of(engine, user)

    workflow_id, result = await reconcile(temporal_client, settings)

    subjects = {paid.hold_id, released.hold_id, all_points.hold_id, purchase}
    assert await findings_of(engine, result.reconciliation_id, subjects) == []
    assert result.examined["payments"] >= 3
    assert result.examined["vouchers"] >= 1
    assert result.runs == 1
    progress = await temporal_client.get_workflow_handle(workflow_id).query(
        ReconciliationWorkflow.progress
    )
    assert isinstance(progress, ReconciliationProgress)
    assert (progress.status, progress.phase) == ("done", "done")
    await save_history("clean", workflow_id)


async def test_planted_mismatches_are_found_once_each_even_when_batches_rerun(
    temporal_client: Client,
    settings: Settings,
    engine: AsyncEngine,
    owner_engine: AsyncEngine,
    stripe_client: stripe.StripeClient,
    make_wallet: MakeWallet,
    api: Api,
    open_holds: list[str],
    save_history: SaveHistory,
) -> None:
    user = await make_wallet(500_000)
    # Charged 65,000 where the order minus the discount is 70,000.
    overcharged = await paid_checkout(
        temporal_client, settings, stripe_client, user, new_booking(), charge=65_000
    )
    # The booking service confirmed: the points are captured, the PaymentIntent cancelled.
    confirmed = await decided_checkout(temporal_client, settings, user, new_booking(), "confirm")
    # Released in the ledger, yet the customer paid.
    intent = await stripe_client.v1.payment_intents.create_async(
        {"amount": 40_000, "currency": "vnd"}
    )
    assert await pay(stripe_client, intent.id) == "succeeded"
    paid_released = await planted_settlement(engine, user, new_booking(), intent.id, captured=False)
    # Captured naming a PaymentIntent Stripe never heard of.
    unknown = await planted_settlement(
        engine, user, new_booking(), f"pi_gone{uuid.uuid4().hex[:12]}", captured=True
    )
    # A hold whose saga an operator terminated.
    orphan_booking = new_booking()
    orphan = await hold_for(temporal_client, settings, user, orphan_booking)
    open_holds.append(orphan.hold_id)
    await temporal_client.get_workflow_handle(workflow_id_for(orphan_booking)).terminate(
        reason="test: the saga is gone"
    )
    # A voucher whose row was lost, and one whose purchase lost its burn.
    codeless, unpaid = await make_wallet(5_000), await make_wallet(5_000)
    await buy_voucher(api, codeless)
    await buy_voucher(api, unpaid)
    lost_code, lost_burn = await purchase_of(engine, codeless), await purchase_of(engine, unpaid)
    async with owner_engine.begin() as conn:
        await conn.execute(text("DELETE FROM vouchers WHERE purchase_id = :p"), {"p": lost_code})
        await conn.execute(
            text("UPDATE voucher_purchases SET burn_tx_id = NULL WHERE purchase_id = :p"),
            {"p": lost_burn},
        )

    # Small batches: the walks page through several of them.
    counted_before = _counted()
    workflow_id, result = await reconcile(temporal_client, settings, batch_size=2)

    expected = sorted(
        [
            ("payment_amount_mismatch", overcharged.hold_id),
            ("payment_not_succeeded", confirmed.hold_id),
            ("payment_succeeded_not_captured", paid_released),
            ("payment_intent_missing", unknown),
            ("hold_without_saga", orphan.hold_id),
            ("voucher_without_code", lost_code),
            ("voucher_code_without_burn", lost_burn),
        ]
    )
    subjects = {s for _, s in expected}
    assert await findings_of(engine, result.reconciliation_id, subjects) == expected
    assert not result.ok
    for kind, _ in expected:
        assert result.findings[kind] >= 1, kind
    # The worker (this process) counted each recorded finding once, by kind.
    counted = {k: n - counted_before.get(k, 0) for k, n in _counted().items()}
    assert {k: n for k, n in counted.items() if n} == result.findings
    await save_history("findings", workflow_id)

    # The same batches again (a retried activity): the same findings, recorded once.
    async with engine.connect() as conn:
        count = text("SELECT count(*) FROM reconciliation_findings WHERE reconciliation_id = :r")
        before = (await conn.execute(count, {"r": result.reconciliation_id})).scalar_one()
    activities = ReconciliationActivities(engine, settings, stripe_client)
    env = ActivityEnvironment(client=temporal_client)
    again: dict[str, int] = {}
    for walk in (
        activities.reconcile_payments,
        activities.reconcile_holds,
        activities.reconcile_vouchers,
    ):
        batch = ReconcileBatch(
            reconciliation_id=result.reconciliation_id,
            workflow_id=workflow_id,
            as_of=result.as_of,
            after=None,
            limit=100_000,
            grace_seconds=0,
        )
        rerun = await env.run(walk, batch)
        for kind, n in rerun.findings.items():
            again[kind] = again.get(kind, 0) + n
    assert again == result.findings  # a rerun finds what the run found, no more
    assert {k: n - counted_before.get(k, 0) for k, n in _counted().items() if n} == {
        k: n for k, n in counted.items() if n
    }  # and records (and counts) nothing new
    async with engine.connect() as conn:
        assert (await conn.execute(count, {"r": result.reconciliation_id})).scalar_one() == before
    assert await findings_of(engine, result.reconciliation_id, subjects) == expected

    # Operators list them: by run and kind, newest first, a page at a time.
    listed = await api.http.get(
        "/reconciliation/findings",
        params={"run": workflow_id, "kind": "hold_without_saga"},
        headers=api.admin,
    )
    assert listed.status_code == 200, listed.text
    [orphan_finding] = [f for f in listed.json()["findings"] if f["subject"] == orphan.hold_id]
    assert orphan_finding["booking_id"] == orphan_booking
    assert orphan_finding["details"]["expected"]["saga"] == workflow_id_for(orphan_booking)
    assert orphan_finding["reconciliation_id"] == result.reconciliation_id
    seen: list[int] = []
    cursor: str | None = None
    while True:
        params = {"run": result.reconciliation_id, "limit": 3}
        page = await api.http.get(
            "/reconciliation/findings",
            params={**params, **({"cursor": cursor} if cursor else {})},
            headers=api.admin,
        )
        assert page.status_code == 200, page.text
        seen += [f["finding_id"] for f in page.json()["findings"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == before == len(set(seen))
    assert seen == sorted(seen, reverse=True)
    customer = await api.http.get("/reconciliation/findings", headers=api.customer(user))
    assert customer.status_code == 403


async def test_small_batches_continue_as_new_and_count_the_same(
    temporal_client: Client,
    settings: Settings,
    engine: AsyncEngine,
    make_wallet: MakeWallet,
    save_history: SaveHistory,
) -> None:
    user = await make_wallet(100_000)
    for _ in range(3):
        await decided_checkout(temporal_client, settings, user, new_booking(), "release")

    _, whole = await reconcile(temporal_client, settings, batch_size=1000)
    workflow_id, chained = await reconcile(
        temporal_client, settings, batch_size=2, batches_per_run=3
    )

    assert chained.examined == whole.examined
    assert chained.findings == whole.findings
    assert chained.examined["payments"] >= 3
    # Each walk takes full batches, then one short (maybe empty) batch that ends it.
    assert chained.batches == sum(n // 2 + 1 for n in whole.examined.values())
    assert chained.runs == -(-chained.batches // 3) > 1
    progress = await temporal_client.get_workflow_handle(workflow_id).query(
        ReconciliationWorkflow.progress
    )
    assert progress is not None and progress.status == "done"
    assert progress.runs == chained.runs
    await save_history(
        "continued_as_new", workflow_id, run_id=chained.reconciliation_id, all_runs=True
    )


async def test_an_operator_starts_a_run_over_the_api(
    temporal_client: Client, settings: Settings, api: Api
) -> None:
    started = await api.http.post("/reconciliation/runs", headers=api.admin)
    assert started.status_code == 202, started.text
    body = started.json()
    assert body["workflow_id"] == "ledger-reconciliation-manual"
    handle = temporal_client.get_workflow_handle(
        body["workflow_id"], run_id=body["run_id"], result_type=ReconciliationResult
    )
    result = await within(handle.result(), 120)
    assert result.reconciliation_id == body["run_id"]
    assert set(result.examined) == {"payments", "holds", "vouchers"}
    listed = await api.http.get(
        "/reconciliation/findings", params={"run": body["workflow_id"]}, headers=api.admin
    )
    assert listed.status_code == 200
    assert {f["reconciliation_id"] for f in listed.json()["findings"]} <= {body["run_id"]}
    refused = await api.http.post("/reconciliation/runs", headers=api.service)
    assert refused.status_code == 403


async def test_running_sagas_are_told_from_ended_and_unknown_ones(
    temporal_client: Client, settings: Settings, make_wallet: MakeWallet
) -> None:
    user = await make_wallet(100_000)
    waiting, done = new_booking(), new_booking()
    await hold_for(temporal_client, settings, user, waiting)
    await decided_checkout(temporal_client, settings, user, done, "release")
    ids = [
        workflow_id_for(waiting),
        workflow_id_for(done),
        workflow_id_for(new_booking()),  # never started
        'redemption-it\'s "quoted"',  # not put in a visibility query; described instead
    ]
    try:
        assert await sagas.running(temporal_client, ids) == {workflow_id_for(waiting)}
    finally:
        await checkout.decide(temporal_client, waiting, "release", "test over")
        await ended(temporal_client, waiting)


async def test_the_database_knows_every_finding_kind_and_no_other(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        definition = (
            await conn.execute(
                text(
                    "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conname = 'ck_reconciliation_findings_kind_known'"
                )
            )
        ).scalar_one()
    assert sorted(re.findall(r"'(\w+)'", definition)) == sorted(FINDING_KINDS)
