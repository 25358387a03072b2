"""The redemption saga under faults: the worker killed (SIGKILL) while sagas wait and while an
activity runs, the Temporal dev server restarted, PostgreSQL stopped during a capture, Stripe's
webhooks arriving after the hold expired. In each, every saga ends exactly once and no point is
lost or doubled (the postings of each booking, the wallets, and the ledger invariants).

Keeping an activity running: the test holds a row lock (`SELECT ... FOR UPDATE` in an open
transaction) on the row the activity must lock or update; the activity really runs and waits
in PostgreSQL until the test lets go. Duplicate and out-of-order webhooks are covered by
tests/redemption/test_http.py; here only the late ones."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import stripe
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus

import devstack
from api.temporal import checkout
from loyalty import ledger
from loyalty.core.db import make_engine
from loyalty.core.settings import Settings
from loyalty.core.temporal import connect
from loyalty.ledger.invariants import find_violations
from loyalty.redemption import stripe_events
from loyalty.redemption.rules import BookingDecision, RedeemRequest, RedemptionState
from tests.faults.conftest import (
    OwnPostgres,
    WebhookCatcher,
    row_locked,
    running_api,
    running_worker,
    unique,
    wait_for_lock_waiter,
)
from tests.harness.histories import history_saver
from tests.harness.workers import WorkerProcess
from tests.redemption.conftest import HISTORIES, Api
from tests.redemption.helpers import DECLINED_CARD, pay, postings, wait_for_end, wallet
from tests.redemption.test_http import signed
from workflows.redemption import RedemptionWorkflow

MakeWallet = Callable[..., Awaitable[str]]
POINTS, ORDER = 30_000, 100_000
CAPTURED = [("hold", 0, POINTS, None), ("capture", -POINTS, -POINTS, POINTS)]
RELEASED = [("hold", 0, POINTS, None), ("release", 0, -POINTS, None)]
HOLD_ROW = "SELECT 1 FROM holds WHERE hold_id = :h FOR UPDATE"
# The statements that wait on those locks (pg_stat_activity keeps the first 1 kB of a query).
CAPTURE_WAITS_ON = "FROM ledger_capture("  # the capture's one call (loyalty.ledger.holds)
HOLD_WAITS_ON = "FROM ledger_hold("  # the hold's one call


async def redeem(api: Api, user: str, booking_id: str) -> dict[str, Any]:
    body = {"booking_id": booking_id, "order_amount": ORDER, "currency": "VND", "points": POINTS}
    answer = await api.http.post(f"/wallets/{user}/redeem", json=body, headers=api.service)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def decide(api: Api, user: str, booking_id: str, decision: str) -> None:
    answer = await api.http.post(
        f"/wallets/{user}/{decision}",
        json={"booking_id": booking_id},
        headers=api.service,
    )
    assert answer.status_code == 202, answer.text


async def event_outcomes(engine: AsyncEngine, payment_intent_id: str) -> list[tuple[str, str]]:
    async with engine.connect() as conn:
        return [(t, o) for _, t, o in await stripe_events.outcomes(conn, payment_intent_id)]


async def wait_for_events(
    engine: AsyncEngine, payment_intent_id: str, count: int = 1, within: float = 20
) -> list[tuple[str, str]]:
    deadline = time.monotonic() + within
    while len(seen := await event_outcomes(engine, payment_intent_id)) < count:
        if time.monotonic() > deadline:
            return seen
        await asyncio.sleep(0.1)
    return seen


async def activity_starts(client: Client, workflow_id: str, activity: str) -> list[int]:
    """The attempt number of each recorded start of the named activity (the last attempt only:
    Temporal records the start of a retried activity once it ends)."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    scheduled: dict[int, str] = {}
    attempts = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            scheduled[event.event_id] = attrs.activity_type.name
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attrs_started = event.activity_task_started_event_attributes
            if scheduled.get(attrs_started.scheduled_event_id) == activity:
                attempts.append(attrs_started.attempt)
    return attempts


# --- the worker killed ------------------------------------------------------------------------


@pytest.mark.slow
async def test_worker_killed_while_sagas_wait_each_outcome_lands_once(
    api: Api,
    worker_process: WorkerProcess,
    temporal_client: Client,
    settings: Settings,
    engine: AsyncEngine,
    stripe_client: stripe.StripeClient,
    make_wallet: MakeWallet,
) -> None:
    """Five sagas wait for their outcome; the worker dies; while no worker runs, one is paid,
    one declined, one released, one confirmed (webhooks and signals wait in Temporal) and one
    hold expires (its timer fires on the server). A new worker settles each once."""
    first = await worker_process.start()
    outcomes = ["paid", "declined", "released", "confirmed", "expired"]
    users = {o: await make_wallet(50_000) for o in outcomes}
    bookings = {o: unique(f"bk-{o}") for o in outcomes}
    holds = {o: await redeem(api, users[o], bookings[o]) for o in outcomes[:-1]}
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
    await pay(stripe_client, holds["declined"]["payment_intent_id"], DECLINED_CARD)
    # The booking service's decisions as the API sends them (the signal).
    for outcome, signal_ in (("released", RedemptionWorkflow.release),
                             ("confirmed", RedemptionWorkflow.confirm)):  # fmt: skip
        await temporal_client.get_workflow_handle(f"redemption-{bookings[outcome]}").signal(
            signal_, BookingDecision(reason=f"{outcome} while no worker runs")
        )
    assert await wait_for_events(engine, holds["paid"]["payment_intent_id"]) == [
        ("payment_intent.succeeded", "signalled")
    ]
    assert await wait_for_events(engine, holds["declined"]["payment_intent_id"]) == [
        ("payment_intent.payment_failed", "signalled")
    ]
    await asyncio.sleep(max(0.0, expires_at - time.monotonic()) + 1)
    for outcome in outcomes:  # nothing moved without a worker
        assert await wallet(engine, users[outcome]) == type(await wallet(engine, users[outcome]))(
            50_000, POINTS
        )
        status = (await temporal_client.get_workflow_handle(
            f"redemption-{bookings[outcome]}").describe()).status  # fmt: skip
        assert status == WorkflowExecutionStatus.RUNNING

    await worker_process.start()
    finals = {o: await wait_for_end(temporal_client, bookings[o], within=90) for o in outcomes}

    expected = {
        "paid": ("captured", "payment_succeeded", CAPTURED),
        "declined": ("released", "payment_failed", RELEASED),
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
    async with running_worker(temporal_client, engine, settings):
        await redeem(api, user, booking_id)
    answer = await api.http.post(
        f"/wallets/{user}/release", json={"booking_id": booking_id}, headers=api.service
    )
    if answer.status_code != 202:  # settle the saga anyway, so the test leaves no hold open
        await temporal_client.get_workflow_handle(f"redemption-{booking_id}").signal(
            RedemptionWorkflow.release, BookingDecision(reason="test cleanup")
        )
    async with running_worker(temporal_client, engine, settings):
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
    api: Api,
    worker_process: WorkerProcess,
    temporal_client: Client,
    engine: AsyncEngine,
    stripe_client: stripe.StripeClient,
    make_wallet: MakeWallet,
) -> None:
    """The capture (a local activity) is running, waiting for the hold's row, when the worker
    dies. Its transaction dies with the process; the workflow task times out (10 s) and the new
    worker runs the capture again: the hold is captured once."""
    user = await make_wallet(50_000)
    booking_id = unique("bk-capture-kill")
    first = await worker_process.start()
    hold = await redeem(api, user, booking_id)
    handle = temporal_client.get_workflow_handle(hold["workflow_id"])

    async with row_locked(engine, HOLD_ROW, {"h": uuid.UUID(hold["hold_id"])}):
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
    assert await wallet(engine, user) == type(await wallet(engine, user))(50_000 - POINTS, 0)
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
    assert await wallet(engine, user) == type(await wallet(engine, user))(50_000, 0)


# --- the Temporal server restarted ------------------------------------------------------------


@pytest.mark.slow
async def test_temporal_server_restarted_mid_saga(
    settings: Settings,
    engine: AsyncEngine,
    stripe_client: stripe.StripeClient,
    make_wallet: MakeWallet,
    tmp_path: Path,
) -> None:
    """A dev server of the test's own, persisted to its SQLite file, is stopped while four
    sagas wait and started again on the same port and file. While it is down a customer pays
    (the webhook cannot signal; Stripe's redelivery does) and a hold's expiry comes due."""
    port = devstack.free_port()
    address = f"127.0.0.1:{port}"
    db_file, log = tmp_path / "temporal.db", tmp_path / "temporal.log"
    server = devstack.start_temporal(port=port, ui_port=None, db_file=db_file, log_file=log)
    try:
        own = settings.model_copy(update={"temporal_address": address})
        client = await connect(own)
        async with running_api(own) as api, running_worker(client, engine, own):
            kinds = ["paid_after", "paid_during", "released_after", "expired_during"]
            users = {k: await make_wallet(50_000) for k in kinds}
            bookings = {k: unique(f"bk-{k}") for k in kinds}
            holds = {k: await redeem(api, users[k], bookings[k]) for k in kinds[:-1]}
            expiring = await checkout.redeem(
                client,
                own.model_copy(update={"hold_ttl_seconds": 5}),
                RedeemRequest(user_id=users["expired_during"], order_amount=ORDER,
                              booking_id=bookings["expired_during"], currency="VND",
                              points=POINTS),
            )  # fmt: skip
            expires_at = time.monotonic() + 5

            await asyncio.to_thread(devstack.stop_process, server)
            paying = holds["paid_during"]["payment_intent_id"]
            await pay(stripe_client, paying)
            await asyncio.sleep(max(0.0, expires_at - time.monotonic()) + 1)
            server = await asyncio.to_thread(
                devstack.start_temporal, port=port, ui_port=None, db_file=db_file, log_file=log
            )

            # The webhook that came while the server was down was refused (nothing recorded) or,
            # if its signal was retried past the restart, went through. Stripe redelivers a
            # refused event; localstripe does not, so the test redelivers it.
            await asyncio.sleep(12)  # the API's Temporal client gives up retrying after ~10 s
            seen = await event_outcomes(engine, paying)
            if not seen:
                event = await _stripe_event(stripe_client, paying, "payment_intent.succeeded")
                secret = own.stripe_webhook_secret
                answer = await api.http.post(
                    "/webhooks/stripe", content=event, headers=signed(event, secret)
                )
                assert answer.status_code == 200, answer.text
            assert await event_outcomes(engine, paying) == [
                ("payment_intent.succeeded", "signalled")
            ]
            await pay(stripe_client, holds["paid_after"]["payment_intent_id"])
            await decide(api, users["released_after"], bookings["released_after"], "release")

            finals = {k: await wait_for_end(client, bookings[k], within=60) for k in kinds}
        assert {k: f.status for k, f in finals.items()} == {
            "paid_after": "captured",
            "paid_during": "captured",
            "released_after": "released",
            "expired_during": "released",
        }
        assert finals["expired_during"].decision == "expired"
        for kind, final in finals.items():
            rows = CAPTURED if final.status == "captured" else RELEASED
            assert await postings(engine, bookings[kind]) == rows, kind
            assert (await wallet(engine, users[kind])).held == 0
        intent = await stripe_client.v1.payment_intents.retrieve_async(
            expiring.payment_intent_id or ""
        )
        assert intent.status == "canceled"
    finally:
        devstack.stop_process(server)


async def _stripe_event(client: stripe.StripeClient, intent_id: str, event_type: str) -> bytes:
    import json

    events = await client.v1.events.list_async({"type": event_type, "limit": 100})
    (found,) = [e.to_dict() for e in events.data if e.data.object["id"] == intent_id]
    return json.dumps(found).encode()


# --- PostgreSQL stopped -----------------------------------------------------------------------


@pytest.mark.slow
async def test_postgres_stopped_during_a_capture(
    settings: Settings,
    temporal_client: Client,
    stripe_client: stripe.StripeClient,
    tmp_path: Path,
) -> None:
    """A PostgreSQL of the test's own is stopped (`pg_ctl stop -m fast`) while the capture
    activity is inside its transaction; the activity fails and is retried until the database is
    back; the hold is captured once."""
    own_pg = await asyncio.to_thread(OwnPostgres, tmp_path / "pg")
    own_engine: AsyncEngine | None = None
    try:
        await asyncio.to_thread(devstack.run_migrations, own_pg.url)
        own_engine = make_engine(own_pg.url, pool_size=5)
        own = settings.model_copy(update={"database_url": own_pg.url})
        user, booking_id = unique("user"), unique("bk-pg-stop")
        async with own_engine.begin() as conn:
            await ledger.earn(conn, user_id=user, points=50_000, idempotency_key=f"seed:{user}")
        async with running_api(own) as api, running_worker(temporal_client, own_engine, own):
            hold = await redeem(api, user, booking_id)
            intent = hold["payment_intent_id"]
            async with row_locked(own_engine, HOLD_ROW, {"h": uuid.UUID(hold["hold_id"])}):
                await pay(stripe_client, intent)
                assert await wait_for_events(own_engine, intent) == [
                    ("payment_intent.succeeded", "signalled")
                ]
                await wait_for_lock_waiter(own_engine, CAPTURE_WAITS_ON)
                await asyncio.to_thread(own_pg.stop)
            state = await checkout.state(temporal_client, booking_id)
            assert (state.status, state.decision) == ("capturing", "payment_succeeded")
            await asyncio.sleep(3)  # the capture retries against a stopped database
            await asyncio.to_thread(own_pg.start)
            final = await wait_for_end(temporal_client, booking_id, within=90)

        assert final.status == "captured"
        assert await postings(own_engine, booking_id) == CAPTURED
        assert await wallet(own_engine, user) == type(await wallet(own_engine, user))(
            50_000 - POINTS, 0
        )
        # The local capture failed, so it went on as an ordinary activity, retried until the
        # database was back.
        starts = await activity_starts(
            temporal_client, hold["workflow_id"], "capture_redemption_hold"
        )
        assert starts[-1] >= 2, starts
        await history_saver(temporal_client, HISTORIES)(
            "database_down_capture_as_activity", hold["workflow_id"]
        )
        async with own_engine.connect() as conn:
            assert await find_violations(conn) == []
    finally:
        if own_engine is not None:
            await own_engine.dispose()
        await asyncio.to_thread(own_pg.close)


# --- webhooks after the hold expired ----------------------------------------------------------


async def test_webhooks_arriving_after_expiry_change_nothing(
    settings: Settings,
    temporal_client: Client,
    engine: AsyncEngine,
    stripe_client: stripe.StripeClient,
    make_wallet: MakeWallet,
    webhook_catcher: WebhookCatcher,
) -> None:
    """Two customers act before their 4-second holds expire, but Stripe's webhooks are held
    back until the sagas have ended: the one who paid is captured at expiry (the cancel finds
    the payment succeeded), the declined one released. The late webhooks, delivered five times
    each, are acknowledged and move nothing."""
    short = settings.model_copy(update={"hold_ttl_seconds": 4})
    users = {k: await make_wallet(50_000) for k in ("paid", "declined")}
    bookings = {k: unique(f"bk-late-{k}") for k in users}
    async with (
        running_api(short, webhooks=False) as api,
        running_worker(temporal_client, engine, settings),
    ):
        holds = {k: await redeem(api, users[k], bookings[k]) for k in users}
        assert await pay(stripe_client, holds["paid"]["payment_intent_id"]) == "succeeded"
        await pay(stripe_client, holds["declined"]["payment_intent_id"], DECLINED_CARD)
        late = {
            "paid": await webhook_catcher.wait_for(
                holds["paid"]["payment_intent_id"], "payment_intent.succeeded"
            ),
            "declined": await webhook_catcher.wait_for(
                holds["declined"]["payment_intent_id"], "payment_intent.payment_failed"
            ),
        }
        finals: dict[str, RedemptionState] = {
            k: await wait_for_end(temporal_client, bookings[k], within=30) for k in users
        }
        assert (finals["paid"].status, finals["paid"].decision) == ("captured", "expired")
        assert finals["paid"].payment_status == "succeeded"
        assert (finals["declined"].status, finals["declined"].decision) == ("released", "expired")
        before = {k: (await wallet(engine, users[k]), await postings(engine, bookings[k]))
                  for k in users}  # fmt: skip

        for kind, delivery in late.items():
            answers = [await WebhookCatcher.deliver(api, delivery) for _ in range(5)]
            assert [a.status_code for a in answers] == [200] * 5
            assert [a.json()["outcome"] for a in answers[:1]] == ["saga_ended"], kind
            assert [a.json()["duplicate"] for a in answers] == [False] + [True] * 4, kind

    assert before["paid"] == (
        type(before["paid"][0])(50_000 - POINTS, 0),
        CAPTURED,
    )
    assert before["declined"] == (type(before["declined"][0])(50_000, 0), RELEASED)
    for kind in users:
        assert (await wallet(engine, users[kind]), await postings(engine, bookings[kind])) == (
            before[kind]
        )
    assert await event_outcomes(engine, holds["paid"]["payment_intent_id"]) == [
        ("payment_intent.succeeded", "saga_ended")
    ]
    assert await event_outcomes(engine, holds["declined"]["payment_intent_id"]) == [
        ("payment_intent.payment_failed", "saga_ended")
    ]
