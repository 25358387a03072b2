"""The checkout saga when its worker dies: SIGKILL while sagas wait for their outcome, while the
capture and while the hold is placed, and a release accepted while no worker runs. In each, every
saga ends exactly once and no point is lost or doubled (the postings of each booking, the
wallets, and the ledger invariants).

Keeping an activity running: the test holds a row lock (`SELECT ... FOR UPDATE` in an open
transaction) on the row the activity must lock or update; the activity really runs and waits
in PostgreSQL until the test lets go."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Awaitable, Callable

import pytest
import stripe
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus

from api.temporal import checkout
from loyalty.core.settings import Settings
from loyalty.redemption.contracts import BookingDecision, RedeemRequest, workflow_id_for
from tests.faults.conftest import (
    CAPTURE_WAITS_ON,
    CAPTURED,
    HOLD_ROW,
    HOLD_WAITS_ON,
    ORDER,
    POINTS,
    RELEASED,
    decide,
    redeem,
    row_locked,
    unique,
    wait_for_events,
    wait_for_lock_waiter,
)
from tests.harness.api import Api
from tests.harness.workers import WorkerProcess, in_process
from tests.redemption.helpers import DECLINED_CARD, WalletRow, pay, postings, wait_for_end, wallet
from workflows.redemption import RedemptionWorkflow

MakeWallet = Callable[..., Awaitable[str]]


@pytest.mark.slow
async def test_worker_killed_while_sagas_wait_each_outcome_lands_once(
    live_api: Api,
    worker_process: WorkerProcess,
    temporal_client: Client,
    settings: Settings,
    engine: AsyncEngine,
    stripe_client: stripe.StripeClient,
    make_wallet: MakeWallet,
) -> None:
    """Five sagas wait for their outcome; the worker dies; while no worker runs, one is paid,
    one declined and then paid with another card, one released, one confirmed (webhooks and
    signals wait in Temporal) and one hold expires (its timer fires on the server). A new worker
    settles each once."""
    first = await worker_process.start()
    outcomes = ["paid", "declined", "released", "confirmed", "expired"]
    users = {o: await make_wallet(50_000) for o in outcomes}
    bookings = {o: unique(f"bk-{o}") for o in outcomes}
    holds = {o: await redeem(live_api, users[o], bookings[o]) for o in outcomes[:-1]}
    short = settings.model_copy(update={"hold_ttl_seconds": 4})
    expiring = await checkout.redeem(
        temporal_client,
        short,
        RedeemRequest(user_id=users["expired"], booking_id=bookings["expired"],
                      order_amount=ORDER, currency="VND", points=POINTS),
    )  # fmt: skip
    expires_at = time.monotonic() + 4

    worker_process.kill(first)
    assert first.returncode == -signal.SIGKILL

    await pay(stripe_client, holds["paid"]["payment_intent_id"])
    declined_intent = holds["declined"]["payment_intent_id"]
    await pay(stripe_client, declined_intent, DECLINED_CARD)
    # The failure's webhook first, then the customer's second card.
    assert await wait_for_events(engine, declined_intent) == [
        ("payment_intent.payment_failed", "signalled")
    ]
    assert await pay(stripe_client, declined_intent) == "succeeded"
    # The booking service's decisions as the API sends them (the signal).
    for outcome, signal_ in (("released", RedemptionWorkflow.release),
                             ("confirmed", RedemptionWorkflow.confirm)):  # fmt: skip
        await temporal_client.get_workflow_handle(workflow_id_for(bookings[outcome])).signal(
            signal_, BookingDecision(reason=f"{outcome} while no worker runs")
        )
    assert await wait_for_events(engine, holds["paid"]["payment_intent_id"]) == [
        ("payment_intent.succeeded", "signalled")
    ]
    assert await wait_for_events(engine, declined_intent, count=2) == [
        ("payment_intent.payment_failed", "signalled"),
        ("payment_intent.succeeded", "signalled"),
    ]
    await asyncio.sleep(max(0.0, expires_at - time.monotonic()) + 1)
    for outcome in outcomes:  # nothing moved without a worker
        assert await wallet(engine, users[outcome]) == WalletRow(50_000, POINTS)
        status = (await temporal_client.get_workflow_handle(
            workflow_id_for(bookings[outcome])).describe()).status  # fmt: skip
        assert status == WorkflowExecutionStatus.RUNNING

    await worker_process.start()
    finals = {o: await wait_for_end(temporal_client, bookings[o], within=90) for o in outcomes}

    expected = {
        "paid": ("captured", "payment_succeeded", CAPTURED),
        "declined": ("captured", "payment_succeeded", CAPTURED),
        "released": ("released", "released", RELEASED),
        "confirmed": ("captured", "confirmed", CAPTURED),
        "expired": ("released", "expired", RELEASED),
    }
    for outcome, (status, decision, rows) in expected.items():
        assert (finals[outcome].status, finals[outcome].decision) == (status, decision), outcome
        assert await postings(engine, bookings[outcome]) == rows, outcome
        balance = 50_000 - POINTS if status == "captured" else 50_000
        assert (await wallet(engine, users[outcome])).balance == balance, outcome
        assert (await wallet(engine, users[outcome])).held == 0, outcome
    assert finals["declined"].payment_failures == 1
    intent = await stripe_client.v1.payment_intents.retrieve_async(expiring.payment_intent_id or "")
    assert intent.status == "canceled"


@pytest.mark.slow
async def test_release_over_http_is_accepted_while_no_worker_runs(
    api: Api,
    temporal_client: Client,
    settings: Settings,
    engine: AsyncEngine,
    make_wallet: MakeWallet,
) -> None:
    user, booking_id = await make_wallet(50_000), unique("bk-release-no-worker")
    async with in_process(temporal_client, engine, settings):
        await redeem(api, user, booking_id)
    answer = await api.http.post(
        f"/wallets/{user}/release", json={"booking_id": booking_id}, headers=api.service
    )
    if answer.status_code != 202:  # settle the saga anyway, so the test leaves no hold open
        await temporal_client.get_workflow_handle(workflow_id_for(booking_id)).signal(
            RedemptionWorkflow.release, BookingDecision(reason="test cleanup")
        )
    async with in_process(temporal_client, engine, settings):
        final = await wait_for_end(temporal_client, booking_id)
    assert answer.status_code == 202, answer.text
    accepted = answer.json()
    # No worker could answer the status query: the state comes from the search attributes.
    assert (accepted["user_id"], accepted["status"], accepted["decision"]) == (user, "held", None)
    assert "worker" in accepted["waiting_for"]
    # The API's release (not a cleanup) is what the saga acted on once a worker ran.
    assert (final.status, final.decision) == ("released", "released")
    assert await postings(engine, booking_id) == RELEASED


@pytest.mark.slow
async def test_worker_killed_while_the_capture_runs(
    live_api: Api,
    worker_process: WorkerProcess,
    temporal_client: Client,
    engine: AsyncEngine,
    owner_engine: AsyncEngine,
    stripe_client: stripe.StripeClient,
    make_wallet: MakeWallet,
) -> None:
    """The capture (a local activity) is running, waiting for the hold's row, when the worker
    dies. Its transaction dies with the process; the workflow task times out (10 s) and the new
    worker runs the capture again: the hold is captured once."""
    user = await make_wallet(50_000)
    booking_id = unique("bk-capture-kill")
    first = await worker_process.start()
    hold = await redeem(live_api, user, booking_id)
    handle = temporal_client.get_workflow_handle(hold["workflow_id"])

    # The owner's lock: the service's role may not lock a hold's row (it has no UPDATE on it).
    async with row_locked(owner_engine, HOLD_ROW, {"h": uuid.UUID(hold["hold_id"])}):
        await pay(stripe_client, hold["payment_intent_id"])
        await wait_for_lock_waiter(engine, CAPTURE_WAITS_ON)
        assert not (await handle.describe()).raw_description.pending_activities  # it is local
        worker_process.kill(first)
    # The lock is gone; the killed worker's transaction can never commit (its client is dead).
    await asyncio.sleep(1)
    assert await postings(engine, booking_id) == [("hold", 0, POINTS, None)]

    await worker_process.start()
    final = await wait_for_end(temporal_client, booking_id, within=120)

    assert final.status == "captured"
    assert await postings(engine, booking_id) == CAPTURED
    assert await wallet(engine, user) == WalletRow(50_000 - POINTS, 0)
    kinds = [e.event_type for e in (await handle.fetch_history()).events]
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT in kinds  # the killed worker's task
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in kinds  # captured locally


@pytest.mark.slow
async def test_worker_killed_while_the_hold_is_being_placed(
    api: Api,
    worker_process: WorkerProcess,
    temporal_client: Client,
    engine: AsyncEngine,
    make_wallet: MakeWallet,
) -> None:
    """The hold (a local activity inside the redeem update) is running when the worker dies.
    The booking service's redeem call keeps waiting; the workflow task times out, the new worker
    runs the update again, and the caller gets one hold."""
    user = await make_wallet(50_000)
    booking_id = unique("bk-hold-kill")
    first = await worker_process.start()

    async with row_locked(
        engine, "SELECT 1 FROM wallets WHERE user_id = :u FOR NO KEY UPDATE", {"u": user}
    ):
        redeeming = asyncio.create_task(redeem(api, user, booking_id))
        await wait_for_lock_waiter(engine, HOLD_WAITS_ON)
        worker_process.kill(first)
    await worker_process.start()
    hold = await asyncio.wait_for(redeeming, 60)

    assert hold["points_held"] == POINTS
    assert await redeem(api, user, booking_id) == hold  # the same answer, nothing new
    assert await postings(engine, booking_id) == [("hold", 0, POINTS, None)]
    await decide(api, user, booking_id, "release")
    assert (await wait_for_end(temporal_client, booking_id)).status == "released"
    assert await postings(engine, booking_id) == RELEASED
    assert await wallet(engine, user) == WalletRow(50_000, 0)
