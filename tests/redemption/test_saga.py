"""The saga against the real Temporal dev server, PostgreSQL and localstripe, driven through the
same client code the API uses (api.temporal.checkout). Stripe's news is signalled directly here; the
HTTP tests (test_http.py) let localstripe deliver real signed webhooks."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import pytest
import stripe
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus

from api.temporal import checkout
from loyalty.core import search_attributes as sa
from loyalty.core.errors import InsufficientPoints, LoyaltyError, WalletNotFound
from loyalty.core.settings import Settings
from loyalty.redemption.contracts import PaymentEvent, RedeemRequest, workflow_id_for
from loyalty.redemption.errors import (
    CurrencyNotSupported,
    RedemptionCapExceeded,
    RedemptionConflict,
)
from tests.harness.histories import SaveHistory
from tests.redemption.helpers import (
    WalletRow,
    pay,
    postings,
    wait_closed,
    wait_for_end,
    wallet,
)

pytestmark = pytest.mark.usefixtures("worker")

MakeWallet = Callable[..., Awaitable[str]]


def request(user_id: str, booking_id: str, *, order: int = 100_000, points: int = 30_000,
            currency: str = "VND") -> RedeemRequest:  # fmt: skip
    return RedeemRequest(
        user_id=user_id,
        booking_id=booking_id,
        order_amount=order,
        currency=currency,
        points=points,
    )


async def test_paid_checkout_captures_the_points(
    temporal_client: Client,
    settings: Settings,
    engine: AsyncEngine,
    stripe_client: stripe.StripeClient,
    make_wallet: MakeWallet,
    booking_id: str,
    save_history: SaveHistory,
) -> None:
    user = await make_wallet(50_000)
    hold = await checkout.redeem(temporal_client, settings, request(user, booking_id))

    assert hold.points_held == 30_000
    assert hold.discount_minor == 30_000
    assert hold.amount_to_charge_minor == 70_000
    assert hold.payment_intent_id and hold.client_secret
    assert await wallet(engine, user) == WalletRow(50_000, 30_000)
    intent = await stripe_client.v1.payment_intents.retrieve_async(hold.payment_intent_id)
    assert intent.amount == 70_000
    assert intent.metadata["workflow_id"] == workflow_id_for(booking_id)
    assert intent.metadata["booking_id"] == booking_id

    assert await pay(stripe_client, hold.payment_intent_id) == "succeeded"
    await checkout.payment_news(
        temporal_client,
        hold.workflow_id,
        "payment_succeeded",
        PaymentEvent(payment_intent_id=hold.payment_intent_id, event_id="evt_test"),
    )
    final = await wait_for_end(temporal_client, booking_id)

    assert final.status == "captured"
    assert (await wallet(engine, user)).balance == 20_000
    assert (await wallet(engine, user)).held == 0
    assert await postings(engine, booking_id) == [
        ("hold", 0, 30_000, None),
        ("capture", -30_000, -30_000, 30_000),
    ]
    # Saga version 2: the capture is a local activity (no activity task, no third workflow
    # task), and the search attributes set at start are not upserted again.
    events = (await temporal_client.get_workflow_handle(hold.workflow_id).fetch_history()).events
    kinds = [EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in events]
    assert "ACTIVITY_TASK_SCHEDULED" not in kinds
    assert kinds.count("WORKFLOW_TASK_COMPLETED") == 2
    assert kinds.count("UPSERT_WORKFLOW_SEARCH_ATTRIBUTES") == 2  # held, captured
    await save_history("paid_captured", hold.workflow_id)


async def test_all_points_order_makes_no_payment_intent_and_confirm_captures(
    temporal_client: Client,
    settings: Settings,
    engine: AsyncEngine,
    make_wallet: MakeWallet,
    booking_id: str,
    save_history: SaveHistory,
) -> None:
    user = await make_wallet(50_000, tier="gold")  # gold redeems up to 100% of the order
    hold = await checkout.redeem(
        temporal_client, settings, request(user, booking_id, order=40_000, points=40_000)
    )
    assert hold.amount_to_charge_minor == 0
    assert hold.payment_intent_id is None and hold.client_secret is None

    await checkout.decide(temporal_client, booking_id, "confirm", None)
    final = await wait_for_end(temporal_client, booking_id)

    assert final.status == "captured"
    assert (await wallet(engine, user)).balance == 10_000
    await save_history("all_points_confirmed", hold.workflow_id)


async def test_release_cancels_the_payment_intent_and_releases(
    temporal_client: Client,
    settings: Settings,
    engine: AsyncEngine,
    stripe_client: stripe.StripeClient,
    make_wallet: MakeWallet,
    booking_id: str,
    save_history: SaveHistory,
) -> None:
    user = await make_wallet(50_000)
    hold = await checkout.redeem(temporal_client, settings, request(user, booking_id))
    assert hold.payment_intent_id

    await checkout.decide(temporal_client, booking_id, "release", "booking cancelled")
    final = await wait_for_end(temporal_client, booking_id)

    assert final.status == "released"
    assert final.payment_status == "canceled"
    intent = await stripe_client.v1.payment_intents.retrieve_async(hold.payment_intent_id)
    assert intent.status == "canceled"
    assert await wallet(engine, user) == WalletRow(50_000, 0)
    assert [p[0] for p in await postings(engine, booking_id)] == ["hold", "release"]
    await save_history("released_by_booking", hold.workflow_id)


async def test_payment_after_release_requested_is_captured_not_released(
    temporal_client: Client,
    settings: Settings,
    engine: AsyncEngine,
    stripe_client: stripe.StripeClient,
    make_wallet: MakeWallet,
    booking_id: str,
    save_history: SaveHistory,
) -> None:
    user = await make_wallet(50_000)
    hold = await checkout.redeem(temporal_client, settings, request(user, booking_id))
    assert hold.payment_intent_id
    # The customer pays; before the news arrives, the booking service asks to release.
    assert await pay(stripe_client, hold.payment_intent_id) == "succeeded"
    await checkout.decide(temporal_client, booking_id, "release", "customer closed the tab")
    final = await wait_for_end(temporal_client, booking_id)

    assert final.status == "captured"
    assert final.payment_status == "succeeded"
    assert (await wallet(engine, user)).balance == 20_000
    assert [p[0] for p in await postings(engine, booking_id)] == ["hold", "capture"]
    await save_history("paid_before_cancel_captured", hold.workflow_id)


async def test_hold_expiry_cancels_and_releases(
    temporal_client: Client,
    settings: Settings,
    engine: AsyncEngine,
    stripe_client: stripe.StripeClient,
    make_wallet: MakeWallet,
    booking_id: str,
    save_history: SaveHistory,
) -> None:
    user = await make_wallet(50_000)
    short = settings.model_copy(update={"hold_ttl_seconds": 2})
    hold = await checkout.redeem(temporal_client, short, request(user, booking_id))
    assert hold.payment_intent_id

    final = await wait_for_end(temporal_client, booking_id, within=20)

    assert final.status == "released"
    assert final.decision == "expired"
    intent = await stripe_client.v1.payment_intents.retrieve_async(hold.payment_intent_id)
    assert intent.status == "canceled"
    assert (await wallet(engine, user)).available == 50_000
    await save_history("expired_released", hold.workflow_id)


@pytest.mark.parametrize(
    ("balance", "kwargs", "error"),
    [
        (10_000, {"points": 20_000, "order": 100_000}, InsufficientPoints),
        (50_000, {"points": 31_000, "order": 100_000}, RedemptionCapExceeded),  # bronze: 30%
        (50_000, {"points": 1_000, "currency": "USD"}, CurrencyNotSupported),
        (None, {"points": 1_000}, WalletNotFound),
    ],
)
async def test_refused_redeem_completes_as_rejected_and_holds_nothing(
    temporal_client: Client,
    settings: Settings,
    engine: AsyncEngine,
    make_wallet: MakeWallet,
    new_user_id: Callable[[], str],
    booking_id: str,
    balance: int | None,
    kwargs: dict[str, int | str],
    error: type[LoyaltyError],
    save_history: SaveHistory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    user = await make_wallet(balance) if balance is not None else new_user_id()
    with caplog.at_level(logging.DEBUG), pytest.raises(error):
        await checkout.redeem(temporal_client, settings, request(user, booking_id, **kwargs))  # type: ignore[arg-type]

    assert await postings(engine, booking_id) == []
    if error is InsufficientPoints:
        await save_history("rejected_insufficient_points", workflow_id_for(booking_id))
    if balance is not None:
        assert (await wallet(engine, user)).held == 0
    # A refusal is an outcome, not a breakage: the run completed, as `rejected`.
    status = await wait_closed(temporal_client, workflow_id_for(booking_id))
    assert status == WorkflowExecutionStatus.COMPLETED
    final = await wait_for_end(temporal_client, booking_id)
    assert final.status == "rejected"
    assert final.hold is None
    if error is not CurrencyNotSupported:  # refused by the hold's activity, not the validator
        assert final.error_code == error.code
    # The worker says so in one line at info: no warning, no traceback.
    refusals = [r for r in caplog.records if r.getMessage().startswith("refused: ")]
    if error is CurrencyNotSupported:
        assert refusals == []
    else:
        assert [(r.levelno, r.getMessage().split(" (")[0]) for r in refusals] == [
            (logging.INFO, f"refused: {error.code}: {final.error_message}")
        ]
    # (The SDK keeps the failure's traceback at debug level, shown by no default setting.)
    noisy = [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING or (r.levelno >= logging.INFO and r.exc_info)
    ]
    assert noisy == [], [r.getMessage() for r in noisy]

    # The refusal does not block the booking: a valid request starts the saga afresh.
    if balance:
        hold = await checkout.redeem(
            temporal_client, settings, request(user, booking_id, points=5_000)
        )
        assert hold.points_held == 5_000
        await checkout.decide(temporal_client, booking_id, "release", None)
        assert (await wait_for_end(temporal_client, booking_id)).status == "released"


async def test_repeated_redeem_returns_the_same_answer_and_a_different_body_conflicts(
    temporal_client: Client,
    settings: Settings,
    engine: AsyncEngine,
    make_wallet: MakeWallet,
    booking_id: str,
) -> None:
    user = await make_wallet(50_000)
    first = await checkout.redeem(temporal_client, settings, request(user, booking_id))
    again = await checkout.redeem(temporal_client, settings, request(user, booking_id))
    assert again == first
    with pytest.raises(RedemptionConflict):
        await checkout.redeem(temporal_client, settings, request(user, booking_id, points=1))
    assert (await wallet(engine, user)).held == 30_000

    await checkout.decide(temporal_client, booking_id, "release", None)
    assert (await wait_for_end(temporal_client, booking_id)).status == "released"

    # The checkout ended without a capture: the same request starts the next one (a new run,
    # a new hold), and its retries get that answer.
    after = await checkout.redeem(temporal_client, settings, request(user, booking_id))
    assert (after.hold_id, after.run_id) != (first.hold_id, first.run_id)
    assert after.request == first.request
    assert await checkout.redeem(temporal_client, settings, request(user, booking_id)) == after
    with pytest.raises(RedemptionConflict):
        await checkout.redeem(temporal_client, settings, request(user, booking_id, points=1))
    assert (await wallet(engine, user)).held == 30_000
    await checkout.decide(temporal_client, booking_id, "release", None)
    assert (await wait_for_end(temporal_client, booking_id)).status == "released"
    assert [p[0] for p in await postings(engine, booking_id)] == [
        "hold", "release", "hold", "release"
    ]  # fmt: skip
    assert (await wallet(engine, user)).held == 0


async def test_failed_payments_are_counted_once_each_and_the_saga_waits_on(
    temporal_client: Client,
    settings: Settings,
    engine: AsyncEngine,
    make_wallet: MakeWallet,
    booking_id: str,
) -> None:
    """Saga version 3: declined attempts (one of them delivered twice) are counted, the hold
    and the PaymentIntent stay; a payment for another PaymentIntent is ignored."""
    user = await make_wallet(50_000)
    hold = await checkout.redeem(temporal_client, settings, request(user, booking_id))
    assert hold.payment_intent_id
    for event_id in ("evt_1", "evt_1", "evt_2"):
        await checkout.payment_news(
            temporal_client,
            hold.workflow_id,
            "payment_failed",
            PaymentEvent(
                payment_intent_id=hold.payment_intent_id,
                event_id=event_id,
                reason=f"declined\x00 ({event_id})",
            ),
        )
    await checkout.payment_news(
        temporal_client,
        hold.workflow_id,
        "payment_succeeded",
        PaymentEvent(payment_intent_id="pi_of_another_checkout", event_id="evt_other"),
    )

    state = await checkout.state(temporal_client, booking_id)
    assert (state.status, state.decision, state.payment_failures) == ("held", None, 2)
    assert state.last_payment_error == "declined (evt_2)"
    assert state.waiting_for and state.waiting_for.startswith(
        "waiting for payment, 2 failed attempts (last: declined (evt_2))"
    )
    description = await temporal_client.get_workflow_handle(hold.workflow_id).describe()
    assert description.typed_search_attributes.get(sa.PAYMENT_FAILURES) == "2"
    assert description.typed_search_attributes.get(sa.REDEMPTION_STATUS) == "held"
    assert await wallet(engine, user) == WalletRow(50_000, 30_000)

    await checkout.decide(temporal_client, booking_id, "release", "gave up\x00")
    final = await wait_for_end(temporal_client, booking_id)
    assert (final.status, final.decision, final.payment_failures) == ("released", "released", 2)
    assert final.payment_status == "canceled"
    async with engine.connect() as conn:
        description_of_release = (
            await conn.execute(
                text(
                    "SELECT description FROM wallet_transactions "
                    "WHERE booking_id = :b AND type = 'release'"
                ),
                {"b": booking_id},
            )
        ).scalar_one()
    assert "gave up" in description_of_release  # the NUL the signal carried is gone
    assert "\x00" not in description_of_release
