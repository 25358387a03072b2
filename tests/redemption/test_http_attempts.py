"""A checkout as shoppers and booking services really retry it, end to end through HTTP with
localstripe's signed webhooks and the official `stripe` SDK: another card after a declined one on
the same PaymentIntent, a hold that expires after a decline, the booking's checkout started again
after a release (and closed for good by a capture), and inputs refused before the saga sees them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import stripe
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from loyalty.core import search_attributes as sa
from loyalty.core.settings import Settings
from loyalty.redemption.contracts import RedemptionState
from tests.harness.api import Api, point_webhooks, served
from tests.harness.histories import SaveHistory
from tests.harness.waits import eventually
from tests.redemption.helpers import (
    DECLINED_CARD,
    WalletRow,
    events_of,
    intent_event,
    pay,
    postings,
    redeem,
    signed,
    status_of,
    wait_for_end,
    wallet,
)

pytestmark = pytest.mark.usefixtures("worker")

MakeWallet = Callable[..., Awaitable[str]]


async def test_declined_card_then_a_good_card_on_the_same_payment_intent_captures_once(
    live_api: Api,
    temporal_client: Client,
    engine: AsyncEngine,
    stripe_client: stripe.StripeClient,
    make_wallet: MakeWallet,
    booking_id: str,
    save_history: SaveHistory,
) -> None:
    user = await make_wallet(50_000)
    hold = (await redeem(live_api, user, booking_id)).json()
    intent_id = hold["payment_intent_id"]

    assert await pay(stripe_client, intent_id, DECLINED_CARD) == "requires_payment_method"
    await eventually(lambda: _failures(live_api, user, booking_id), seconds=30)
    waiting = await status_of(live_api, user, booking_id)
    assert (waiting["status"], waiting["decision"], waiting["payment_failures"]) == (
        "held",
        None,
        1,
    )
    assert waiting["payment_status"] == "requires_payment_method"
    assert waiting["waiting_for"].startswith("waiting for payment, 1 failed attempt")
    assert waiting["last_payment_error"] == "Your card was declined."
    attributes = (
        await temporal_client.get_workflow_handle(hold["workflow_id"]).describe()
    ).typed_search_attributes
    assert attributes.get(sa.REDEMPTION_STATUS) == "held"
    assert attributes.get(sa.PAYMENT_FAILURES) == "1"
    assert await wallet(engine, user) == WalletRow(50_000, 30_000)  # the points stay held

    # The customer tries another card on the same PaymentIntent, as Stripe allows.
    assert await pay(stripe_client, intent_id) == "succeeded"
    final = await wait_for_end(temporal_client, booking_id)

    assert (final.status, final.decision, final.payment_failures) == (
        "captured", "payment_succeeded", 1
    )  # fmt: skip
    assert final.alert is None
    assert await postings(engine, booking_id) == [
        ("hold", 0, 30_000, None),
        ("capture", -30_000, -30_000, 30_000),
    ]
    assert await wallet(engine, user) == WalletRow(20_000, 0)
    assert await events_of(engine, intent_id) == [
        ("payment_intent.payment_failed", "signalled"),
        ("payment_intent.succeeded", "signalled"),
    ]
    intent = await stripe_client.v1.payment_intents.retrieve_async(intent_id)
    assert (intent.status, intent.amount) == ("succeeded", 70_000)
    await save_history("declined_then_paid", hold["workflow_id"])


async def _failures(api: Api, user: str, booking_id: str) -> int:
    return int((await status_of(api, user, booking_id))["payment_failures"])


async def test_declined_card_then_the_hold_expires_releases_and_cancels(
    settings: Settings,
    temporal_client: Client,
    engine: AsyncEngine,
    stripe_client: stripe.StripeClient,
    make_wallet: MakeWallet,
    booking_id: str,
    save_history: SaveHistory,
) -> None:
    user = await make_wallet(50_000)
    short = settings.model_copy(update={"hold_ttl_seconds": 4})
    async with served(short) as api:
        assert api.url is not None
        await point_webhooks(short, api.url)
        hold = (await redeem(api, user, booking_id)).json()
        intent_id = hold["payment_intent_id"]
        assert await pay(stripe_client, intent_id, DECLINED_CARD) == "requires_payment_method"
        final = await wait_for_end(temporal_client, booking_id, within=30)

    assert (final.status, final.decision, final.payment_failures) == ("released", "expired", 1)
    assert final.payment_status == "canceled"
    intent = await stripe_client.v1.payment_intents.retrieve_async(intent_id)
    assert intent.status == "canceled"  # the customer cannot pay it later
    assert await wallet(engine, user) == WalletRow(50_000, 0)
    assert await postings(engine, booking_id) == [
        ("hold", 0, 30_000, None),
        ("release", 0, -30_000, None),
    ]
    assert await events_of(engine, intent_id) == [("payment_intent.payment_failed", "signalled")]
    await save_history("declined_then_expired", hold["workflow_id"])


async def test_released_checkout_starts_again_with_another_amount_then_capture_closes_it(
    live_api: Api,
    temporal_client: Client,
    engine: AsyncEngine,
    stripe_client: stripe.StripeClient,
    make_wallet: MakeWallet,
    booking_id: str,
    save_history: SaveHistory,
) -> None:
    user = await make_wallet(50_000)
    first = (await redeem(live_api, user, booking_id)).json()
    released = await live_api.http.post(
        f"/wallets/{user}/release",
        json={"booking_id": booking_id, "reason": "customer changed the points"},
        headers=live_api.service,
    )
    assert released.status_code == 202, released.text
    # At once, without waiting for the release to land: the call waits for the first checkout
    # to end, then starts the booking's next one.
    answer = await redeem(live_api, user, booking_id, points=20_000)
    assert answer.status_code == 200, answer.text
    second = answer.json()
    assert second["workflow_id"] == first["workflow_id"] == f"redemption-{booking_id}"
    assert second["run_id"] != first["run_id"]
    assert second["hold_id"] != first["hold_id"]
    assert second["payment_intent_id"] != first["payment_intent_id"]
    assert (second["points_held"], second["amount_to_charge_minor"]) == (20_000, 80_000)
    assert await wallet(engine, user) == WalletRow(50_000, 20_000)
    # The same call again: the same (live) answer.
    assert (await redeem(live_api, user, booking_id, points=20_000)).json() == second
    # News about the first checkout's PaymentIntent reaches the run that made it (its metadata
    # names it), which has ended: the second checkout does not hear of it.
    old_intent = await stripe_client.v1.payment_intents.retrieve_async(first["payment_intent_id"])
    assert old_intent.metadata["run_id"] == first["run_id"]
    late = intent_event(
        f"evt_old_run_{booking_id}", "payment_intent.payment_failed", old_intent.to_dict()
    )
    secret = live_api.settings.stripe_webhook_secret
    answer = await live_api.http.post(
        "/webhooks/stripe", content=late, headers=signed(late, secret)
    )
    assert answer.json()["outcome"] == "saga_ended"
    assert (await status_of(live_api, user, booking_id))["payment_failures"] == 0

    assert await pay(stripe_client, second["payment_intent_id"]) == "succeeded"
    final = await wait_for_end(temporal_client, booking_id)
    assert (final.status, final.decision, final.run_id) == (
        "captured", "payment_succeeded", second["run_id"]
    )  # fmt: skip
    ended = temporal_client.get_workflow_handle(
        first["workflow_id"], run_id=first["run_id"], result_type=RedemptionState
    )
    assert (await ended.result()).status == "released"
    assert (await status_of(live_api, user, booking_id))["run_id"] == second["run_id"]

    # Both holds resolved once: the first released, the second captured.
    assert await postings(engine, booking_id) == [
        ("hold", 0, 30_000, None),
        ("release", 0, -30_000, None),
        ("hold", 0, 20_000, None),
        ("capture", -20_000, -20_000, 20_000),
    ]
    async with engine.connect() as conn:
        holds = (
            await conn.execute(
                text("SELECT hold_id::text, status FROM holds WHERE booking_id = :b"),
                {"b": booking_id},
            )
        ).all()
    assert dict(holds) == {first["hold_id"]: "released", second["hold_id"]: "captured"}
    assert await wallet(engine, user) == WalletRow(30_000, 0)

    # After the capture the booking's checkout is over: any redeem is a 409, and moves nothing.
    for points in (20_000, 5_000):
        again = await redeem(live_api, user, booking_id, points=points)
        assert (again.status_code, again.json()["code"]) == (409, "redemption_captured")
    assert len(await postings(engine, booking_id)) == 4
    await save_history("released_then_redeemed_paid", second["workflow_id"])


async def test_nul_or_overlong_reason_is_422_and_changes_nothing(
    api: Api,
    temporal_client: Client,
    engine: AsyncEngine,
    make_wallet: MakeWallet,
    booking_id: str,
) -> None:
    user = await make_wallet(50_000)
    await redeem(api, user, booking_id)
    for decision in ("confirm", "release"):
        for reason in ("booking\x00cancelled", "x" * 501):
            answer = await api.http.post(
                f"/wallets/{user}/{decision}",
                json={"booking_id": booking_id, "reason": reason},
                headers=api.service,
            )
            assert (answer.status_code, answer.json()["code"]) == (422, "validation_error")
            assert answer.json()["details"]["errors"][0]["loc"] == ["body", "reason"]
    state = await status_of(api, user, booking_id)
    assert (state["status"], state["decision"]) == ("held", None)
    assert await postings(engine, booking_id) == [("hold", 0, 30_000, None)]
    # The saga never saw them: its history has no signal.
    events = (
        await temporal_client.get_workflow_handle(f"redemption-{booking_id}").fetch_history()
    ).events
    assert not [
        e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    await api.http.post(
        f"/wallets/{user}/release", json={"booking_id": booking_id}, headers=api.service
    )
    assert (await wait_for_end(temporal_client, booking_id)).status == "released"
