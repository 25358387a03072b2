"""The checkout saga through outages: the Temporal dev server restarted mid-saga, PostgreSQL
stopped during a capture, Stripe restarted with its data lost or gone for good, Stripe's webhooks
arriving after the hold expired. In each, every saga ends exactly once and no point is lost or
doubled (the postings of each booking, the wallets, and the ledger invariants); where the payment
side cannot be settled, the CheckoutAlert says so. Duplicate and out-of-order webhooks are
covered by tests/redemption/test_http.py; here only the late ones."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import stripe
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus

import devstack
from api.temporal import checkout
from loyalty import ledger
from loyalty.core import search_attributes as sa
from loyalty.core.db import make_engine
from loyalty.core.settings import Settings
from loyalty.core.temporal import connect
from loyalty.ledger.invariants import find_violations
from loyalty.redemption.contracts import RedeemRequest, RedemptionState
from tests.faults.conftest import (
    CAPTURE_WAITS_ON,
    CAPTURED,
    HOLD_ROW,
    ORDER,
    POINTS,
    RELEASED,
    OwnPostgres,
    WebhookCatcher,
    decide,
    event_outcomes,
    redeem,
    row_locked,
    running_api,
    unique,
    wait_for_events,
    wait_for_lock_waiter,
)
from tests.harness.histories import history_saver
from tests.harness.waits import eventually
from tests.harness.workers import in_process
from tests.redemption.helpers import (
    DECLINED_CARD,
    HISTORIES,
    WalletRow,
    pay,
    postings,
    signed,
    wait_for_end,
    wallet,
)

MakeWallet = Callable[..., Awaitable[str]]


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
        async with running_api(own) as api, in_process(client, engine, own):
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
    owner_engine: AsyncEngine | None = None
    try:
        await asyncio.to_thread(devstack.run_migrations, own_pg.owner_url)
        own_engine = make_engine(own_pg.url, pool_size=5)  # the application role, as the service
        owner_engine = make_engine(own_pg.owner_url, pool_size=1)  # for the hold's row lock
        own = settings.model_copy(update={"database_url": own_pg.url})
        user, booking_id = unique("user"), unique("bk-pg-stop")
        async with own_engine.begin() as conn:
            await ledger.earn(conn, user_id=user, points=50_000, idempotency_key=f"seed:{user}")
        async with running_api(own) as api, in_process(temporal_client, own_engine, own):
            hold = await redeem(api, user, booking_id)
            intent = hold["payment_intent_id"]
            async with row_locked(owner_engine, HOLD_ROW, {"h": uuid.UUID(hold["hold_id"])}):
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
        assert await wallet(own_engine, user) == WalletRow(50_000 - POINTS, 0)
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
        for engine in (own_engine, owner_engine):
            if engine is not None:
                await engine.dispose()
        await asyncio.to_thread(own_pg.close)


# --- Stripe restarted, or gone ----------------------------------------------------------------


class OwnLocalstripe:
    """A localstripe of the test's own (devstack), stopped and started again on its port: its data
    is in memory, so a restart forgets every PaymentIntent, as `make run` restarted does."""

    def __init__(self, log_dir: Path) -> None:
        self.port = devstack.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log_dir / "own-localstripe.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = devstack.start_localstripe(port=self.port, log_file=self.log)

    def stop(self) -> None:
        if self.proc is not None:
            devstack.stop_process(self.proc)
            self.proc = None


@contextlib.asynccontextmanager
async def own_localstripe(log_dir: Path) -> AsyncIterator[OwnLocalstripe]:
    stripe_side = OwnLocalstripe(log_dir)
    await asyncio.to_thread(stripe_side.start)
    try:
        yield stripe_side
    finally:
        await asyncio.to_thread(stripe_side.stop)


async def test_stripe_restarted_with_a_saga_waiting_releases_and_raises_the_alert(
    settings: Settings,
    temporal_client: Client,
    engine: AsyncEngine,
    make_wallet: MakeWallet,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The saga waits on a PaymentIntent; Stripe (a localstripe of the test's own) goes down,
    the hold expires meanwhile (the cancel is retried against the dead server), and Stripe comes
    back without its data: the PaymentIntent is unknown (`resource_missing`), so nothing can be
    charged. The points come back, and the alert is where an operator looks."""
    user, booking_id = await make_wallet(50_000), unique("bk-stripe-restart")
    async with own_localstripe(tmp_path) as stripe_side:
        own = settings.model_copy(
            update={"stripe_api_base": stripe_side.url, "hold_ttl_seconds": 5}
        )
        async with (
            running_api(own, webhooks=False) as api,
            in_process(temporal_client, engine, own),
        ):
            hold = await redeem(api, user, booking_id)
            expires_at = time.monotonic() + 5
            await asyncio.to_thread(stripe_side.stop)
            await asyncio.sleep(max(0.0, expires_at - time.monotonic()) + 3)
            # The cancel is being retried: nothing released yet, no alert yet.
            state = await checkout.state(temporal_client, booking_id)
            assert (state.status, state.decision, state.alert) == ("releasing", "expired", None)
            assert await wallet(engine, user) == WalletRow(50_000, POINTS)

            with caplog.at_level(logging.ERROR, logger="temporalio.workflow"):
                await asyncio.to_thread(stripe_side.start)  # empty: it knows no PaymentIntent
                final = await wait_for_end(temporal_client, booking_id, within=60)

    assert (final.status, final.decision) == ("released", "expired")
    assert (final.payment_status, final.alert) == ("missing", "payment_intent_missing")
    assert final.alert_message and hold["payment_intent_id"] in final.alert_message
    assert await postings(engine, booking_id) == RELEASED
    assert await wallet(engine, user) == WalletRow(50_000, 0)
    alerts = [r for r in caplog.records if "needs an operator" in r.getMessage()]
    assert [r.levelno for r in alerts] == [logging.ERROR]
    description = await temporal_client.get_workflow_handle(hold["workflow_id"]).describe()
    assert description.typed_search_attributes.get(sa.CHECKOUT_ALERT) == "payment_intent_missing"
    query = f'CheckoutAlert = "payment_intent_missing" AND BookingId = "{booking_id}"'

    async def listed() -> list[str]:
        return [w.id async for w in temporal_client.list_workflows(query)]

    assert await eventually(listed, seconds=20) == [hold["workflow_id"]]
    await history_saver(temporal_client, HISTORIES)("stripe_missing_released", hold["workflow_id"])


async def test_stripe_gone_past_the_grace_releases_the_points_with_the_alert(
    settings: Settings,
    temporal_client: Client,
    engine: AsyncEngine,
    make_wallet: MakeWallet,
    tmp_path: Path,
) -> None:
    """Stripe never answers again: the cancel is retried until the hold's expiry plus the
    payment grace (at least policies.PAYMENT_CANCEL_AT_LEAST), then the points are released
    anyway and the alert says the payment side is unsettled. The saga ends; nothing is held."""
    user, booking_id = await make_wallet(50_000), unique("bk-stripe-gone")
    async with own_localstripe(tmp_path) as stripe_side:
        own = settings.model_copy(
            update={
                "stripe_api_base": stripe_side.url,
                "hold_ttl_seconds": 3,
                "redemption_payment_grace_seconds": 2,
            }
        )
        async with (
            running_api(own, webhooks=False) as api,
            in_process(temporal_client, engine, own),
        ):
            await redeem(api, user, booking_id)
            started = time.monotonic()
            await asyncio.to_thread(stripe_side.stop)
            final = await wait_for_end(temporal_client, booking_id, within=60)
            took = time.monotonic() - started

    assert (final.status, final.decision) == ("released", "expired")
    assert (final.payment_status, final.alert) == ("unknown", "payment_unsettled")
    assert await postings(engine, booking_id) == RELEASED
    assert await wallet(engine, user) == WalletRow(50_000, 0)
    # expiry (3 s) + the cancel's bound (10 s: more than the 2 s grace), and some slack
    assert took < 3 + 10 + 15, took


@pytest.mark.slow
async def test_stripe_down_at_checkout_answers_503_and_holds_nothing(
    settings: Settings,
    temporal_client: Client,
    engine: AsyncEngine,
    make_wallet: MakeWallet,
    tmp_path: Path,
) -> None:
    """The PaymentIntent cannot be created (Stripe unreachable): the redeem tries a few times
    (policies.PAYMENT_SETUP) while the booking service waits, then the hold is released, the
    answer is a 503 `payment_unavailable` and the run completes as `rejected`."""
    user, booking_id = await make_wallet(50_000), unique("bk-stripe-down")
    async with own_localstripe(tmp_path) as stripe_side:
        own = settings.model_copy(update={"stripe_api_base": stripe_side.url})
        await asyncio.to_thread(stripe_side.stop)
        async with (
            running_api(own, webhooks=False) as api,
            in_process(temporal_client, engine, own),
        ):
            body = {"booking_id": booking_id, "order_amount": ORDER, "currency": "VND",
                    "points": POINTS}  # fmt: skip
            answer = await api.http.post(
                f"/wallets/{user}/redeem", json=body, headers=api.service, timeout=90
            )
            final = await wait_for_end(temporal_client, booking_id)

    assert (answer.status_code, answer.json()["code"]) == (503, "payment_unavailable")
    assert (final.status, final.error_code, final.hold) == ("rejected", "payment_unavailable", None)
    description = await temporal_client.get_workflow_handle(f"redemption-{booking_id}").describe()
    assert description.status == WorkflowExecutionStatus.COMPLETED
    assert await postings(engine, booking_id) == RELEASED
    assert await wallet(engine, user) == WalletRow(50_000, 0)


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
        in_process(temporal_client, engine, settings),
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
