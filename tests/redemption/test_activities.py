"""The checkout's activities classify what they meet, run as Temporal runs them
(ActivityEnvironment) against the session's PostgreSQL and localstripe: an answer that can never
change is final at once (a refusal, a data error, a PaymentIntent Stripe does not know),
infrastructure trouble is left to retry, and a booking whose points were captured takes no second
hold."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
import stripe
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory
from temporalio.testing import ActivityEnvironment

from activities.redemption import STRIPE_REFUSED, RedemptionActivities, StripePaymentActivities
from activities.support import DATA_ERROR
from loyalty import ledger
from loyalty.core.db import transaction
from loyalty.core.settings import Settings
from loyalty.redemption.contracts import (
    PAYMENT_INTENT_MISSING,
    CancelPaymentIntent,
    PlaceHold,
    RedeemRequest,
    SettleHold,
)
from tests.redemption.helpers import pay, postings, wallet

MakeWallet = Callable[..., Awaitable[str]]


async def _open_hold(engine: AsyncEngine, user: str, booking_id: str, points: int) -> str:
    async with transaction(engine) as conn:
        the_hold, _ = await ledger.hold(
            conn,
            user_id=user,
            points=points,
            idempotency_key=f"test:{booking_id}:{uuid.uuid4()}",
            expires_at=datetime.now(UTC) + timedelta(minutes=15),
            booking_id=booking_id,
        )
    return str(the_hold.hold_id)


def _settle(hold_id: str, booking_id: str, reason: str) -> SettleHold:
    return SettleHold(
        hold_id=hold_id,
        booking_id=booking_id,
        payment_intent_id=None,
        discount_minor=100,
        currency="VND",
        reason=reason,
    )


async def test_a_data_error_is_final_and_moves_nothing(
    engine: AsyncEngine,
    settings: Settings,
    make_wallet: MakeWallet,
    booking_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A NUL in the reason (the API refuses it; a signal could still carry one) makes the
    release's row unstorable: the activity gives up at once instead of retrying for ever."""
    user = await make_wallet(1_000)
    hold_id = await _open_hold(engine, user, booking_id, 400)
    activities = RedemptionActivities(engine, settings)

    with caplog.at_level(logging.INFO), pytest.raises(ApplicationError) as final:
        await ActivityEnvironment().run(
            activities.release, _settle(hold_id, booking_id, "cancelled\x00")
        )
    assert (final.value.type, final.value.non_retryable) == (DATA_ERROR, True)
    assert final.value.category != ApplicationErrorCategory.BENIGN  # something is wrong
    assert [r.levelno for r in caplog.records if "cannot store" in r.getMessage()] == [
        logging.ERROR
    ]
    assert (await wallet(engine, user)).held == 400
    await ActivityEnvironment().run(activities.release, _settle(hold_id, booking_id, "cancelled"))
    assert (await wallet(engine, user)).held == 0


async def test_a_refusal_is_final_benign_and_one_line_at_info(
    engine: AsyncEngine,
    settings: Settings,
    make_wallet: MakeWallet,
    booking_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    user = await make_wallet(1_000)
    hold_id = await _open_hold(engine, user, booking_id, 400)
    activities = RedemptionActivities(engine, settings)
    await ActivityEnvironment().run(activities.capture, _settle(hold_id, booking_id, "paid"))

    with caplog.at_level(logging.INFO), pytest.raises(ApplicationError) as final:
        # Another key, the hold already captured: the ledger refuses.
        await ActivityEnvironment().run(
            activities.release, _settle(hold_id, booking_id, "too late")
        )
    assert (final.value.type, final.value.non_retryable) == ("hold_not_open", True)
    assert final.value.category == ApplicationErrorCategory.BENIGN
    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert [level for level, message in lines if message.startswith("refused: ")] == [logging.INFO]
    assert not [r for r in caplog.records if r.exc_info and r.levelno >= logging.INFO]


async def test_a_booking_already_captured_takes_no_second_hold(
    engine: AsyncEngine,
    settings: Settings,
    make_wallet: MakeWallet,
    booking_id: str,
) -> None:
    user = await make_wallet(1_000)
    hold_id = await _open_hold(engine, user, booking_id, 400)
    activities = RedemptionActivities(engine, settings)
    await ActivityEnvironment().run(activities.capture, _settle(hold_id, booking_id, "paid"))
    command = PlaceHold(
        request=RedeemRequest(
            user_id=user, booking_id=booking_id, order_amount=10_000, currency="VND", points=100
        ),
        workflow_id=f"redemption-{booking_id}",
        hold_id=str(uuid.uuid4()),
        idempotency_key=f"redemption:{booking_id}:run-2:hold",
        expires_at=datetime.now(UTC) + timedelta(minutes=15),
        restarted=True,
    )
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(activities.place_hold, command)
    assert (refused.value.type, refused.value.non_retryable) == ("redemption_captured", True)
    assert [p[0] for p in await postings(engine, booking_id)] == ["hold", "capture"]
    # A first run (not restarted) is not asked: one query less on every checkout.
    held = await ActivityEnvironment().run(
        activities.place_hold, command.model_copy(update={"restarted": False})
    )
    assert held.points == 100
    await ActivityEnvironment().run(activities.release, _settle(held.hold_id, booking_id, "test"))


async def test_cancel_classifies_stripe_answers(
    stripe_client: stripe.StripeClient, settings: Settings, booking_id: str
) -> None:
    payments = StripePaymentActivities(stripe_client)

    async def cancel(intent_id: str) -> str:
        return await ActivityEnvironment().run(
            payments.cancel_payment_intent,
            CancelPaymentIntent(payment_intent_id=intent_id, booking_id=booking_id, reason="t"),
        )

    async def new_intent() -> str:
        intent = await stripe_client.v1.payment_intents.create_async(
            {"amount": 700, "currency": "vnd"}
        )
        return intent.id

    open_one, paid, cancelled = await new_intent(), await new_intent(), await new_intent()
    assert await pay(stripe_client, paid) == "succeeded"
    await stripe_client.v1.payment_intents.cancel_async(cancelled)
    assert await cancel(open_one) == "canceled"
    assert await cancel(paid) == "succeeded"  # the customer paid before the cancel
    assert await cancel(cancelled) == "canceled"  # again: harmless
    assert await cancel("pi_stripe_never_heard_of") == PAYMENT_INTENT_MISSING

    # A key Stripe refuses (401): final, no retry fixes it; and not a business refusal.
    refused_key = StripePaymentActivities(
        stripe.StripeClient("rk_test_refused", base_addresses={"api": settings.stripe_api_base})
    )
    with pytest.raises(ApplicationError) as final:
        await ActivityEnvironment().run(
            refused_key.cancel_payment_intent,
            CancelPaymentIntent(payment_intent_id=open_one, booking_id=booking_id, reason="t"),
        )
    assert (final.value.type, final.value.non_retryable) == (STRIPE_REFUSED, True)
    # Stripe unreachable: retryable (the workflow's backoff, until its deadline).
    unreachable = StripePaymentActivities(
        stripe.StripeClient(
            "sk_test_x", base_addresses={"api": "http://127.0.0.1:1"}, max_network_retries=0
        )
    )
    with pytest.raises(stripe.APIConnectionError):
        await ActivityEnvironment().run(
            unreachable.cancel_payment_intent,
            CancelPaymentIntent(payment_intent_id=open_one, booking_id=booking_id, reason="t"),
        )
