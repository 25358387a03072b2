"""End to end through HTTP, with the worker in process. Where localstripe's signed webhooks must
reach the API (the customer pays or is declined), the API listens on a port (`live_api`);
elsewhere it runs in process (`api`), and the tests post signed webhooks themselves."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest
import stripe
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from loyalty.redemption import stripe_events
from tests.harness.api import Api
from tests.harness.histories import SaveHistory
from tests.redemption.helpers import (
    WalletRow,
    events_of,
    intent_event,
    pay,
    postings,
    redeem,
    signed,
    wait_for_end,
    wallet,
)

pytestmark = pytest.mark.usefixtures("worker")

MakeWallet = Callable[..., Awaitable[str]]


async def test_paid_checkout_webhook_captures(
    live_api: Api,
    temporal_client: Client,
    engine: AsyncEngine,
    stripe_client: stripe.StripeClient,
    make_wallet: MakeWallet,
    booking_id: str,
    save_history: SaveHistory,
) -> None:
    user = await make_wallet(50_000)
    # An event outside the webhook's subscription (stripe_events.WEBHOOK_EVENTS), sent before
    # the payment's: it must never reach the API.
    customer = await stripe_client.v1.customers.create_async({"email": f"{user}@example.com"})
    answer = await redeem(live_api, user, booking_id)
    assert answer.status_code == 200, answer.text
    hold = answer.json()
    assert hold["points_held"] == 30_000
    assert hold["discount_minor"] == 30_000
    assert hold["amount_to_charge_minor"] == 70_000
    assert hold["payment_intent_id"].startswith("pi_")
    assert hold["client_secret"]

    assert await pay(stripe_client, hold["payment_intent_id"]) == "succeeded"
    final = await wait_for_end(temporal_client, booking_id)

    assert final.status == "captured"
    assert final.decision == "payment_succeeded"
    assert (await wallet(engine, user)).balance == 20_000
    assert (await wallet(engine, user)).held == 0
    assert await events_of(engine, hold["payment_intent_id"]) == [
        ("payment_intent.succeeded", "signalled")
    ]
    created = await stripe_client.v1.events.list_async({"type": "customer.created", "limit": 100})
    customer_event = next(e.id for e in created.data if e.data.object["id"] == customer.id)
    await asyncio.sleep(0.5)  # it was sent before the payment's event, with the same delay
    async with engine.connect() as conn:
        seen = await conn.execute(
            text("SELECT count(*) FROM stripe_events WHERE event_id = :e"), {"e": customer_event}
        )
        assert seen.scalar_one() == 0
    status = await live_api.http.get(
        f"/wallets/{user}/redemptions/{booking_id}", headers=live_api.customer(user)
    )
    assert status.status_code == 200
    assert status.json()["status"] == "captured"
    await save_history("http_paid_captured", hold["workflow_id"])


def test_the_webhook_subscription_is_what_the_endpoint_acts_on() -> None:
    import devstack
    from api.routers.webhooks import NEWS

    assert set(NEWS) == set(stripe_events.WEBHOOK_EVENTS)
    fields = devstack.localstripe_webhook_fields("http://api/webhooks/stripe", "whsec_x")
    assert fields["events[]"] == list(stripe_events.WEBHOOK_EVENTS)


async def test_booking_cancelled_releases_and_cancels_the_payment_intent(
    api: Api,
    temporal_client: Client,
    engine: AsyncEngine,
    stripe_client: stripe.StripeClient,
    make_wallet: MakeWallet,
    booking_id: str,
) -> None:
    user = await make_wallet(50_000)
    hold = (await redeem(api, user, booking_id)).json()

    answer = await api.http.post(
        f"/wallets/{user}/release",
        json={"booking_id": booking_id, "reason": "booking cancelled"},
        headers=api.service,
    )
    assert answer.status_code == 202, answer.text
    final = await wait_for_end(temporal_client, booking_id)

    assert final.status == "released"
    intent = await stripe_client.v1.payment_intents.retrieve_async(hold["payment_intent_id"])
    assert intent.status == "canceled"
    assert (await wallet(engine, user)).available == 50_000
    assert [p[0] for p in await postings(engine, booking_id)] == ["hold", "release"]


async def test_all_points_checkout_confirmed_over_http(
    api: Api,
    temporal_client: Client,
    engine: AsyncEngine,
    make_wallet: MakeWallet,
    booking_id: str,
) -> None:
    user = await make_wallet(50_000, tier="gold")
    hold = (await redeem(api, user, booking_id, points=40_000, order=40_000)).json()
    assert hold["amount_to_charge_minor"] == 0
    assert hold["payment_intent_id"] is None

    answer = await api.http.post(
        f"/wallets/{user}/confirm", json={"booking_id": booking_id}, headers=api.service
    )
    assert answer.status_code == 202, answer.text
    assert (await wait_for_end(temporal_client, booking_id)).status == "captured"
    assert (await wallet(engine, user)).balance == 10_000


async def test_duplicate_and_out_of_order_webhooks_change_nothing_after_the_first(
    live_api: Api,
    temporal_client: Client,
    engine: AsyncEngine,
    stripe_client: stripe.StripeClient,
    make_wallet: MakeWallet,
    booking_id: str,
) -> None:
    user = await make_wallet(50_000)
    hold = (await redeem(live_api, user, booking_id)).json()
    intent_id = hold["payment_intent_id"]
    await pay(stripe_client, intent_id)
    assert (await wait_for_end(temporal_client, booking_id)).status == "captured"
    after_first = (await wallet(engine, user), await postings(engine, booking_id))

    # Stripe redelivers the very event five times (localstripe sends once: replay it ourselves).
    # localstripe keeps every event of the test session: page until this one's.
    events = await stripe_client.v1.events.list_async(
        {"type": "payment_intent.succeeded", "limit": 100}
    )
    real = None
    while real is None:
        real = next((e.to_dict() for e in events.data if e.data.object["id"] == intent_id), None)
        if real is None:
            assert events.has_more, f"no payment_intent.succeeded event for {intent_id}"
            events = await events.next_page_async()
    payload = json.dumps(real).encode()
    secret = live_api.settings.stripe_webhook_secret
    for _ in range(5):
        answer = await live_api.http.post(
            "/webhooks/stripe", content=payload, headers=signed(payload, secret)
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["duplicate"] is True

    # A payment_failed arriving after the success (out of order) is acknowledged, changes nothing.
    intent = (await stripe_client.v1.payment_intents.retrieve_async(intent_id)).to_dict()
    late = intent_event("evt_late_failure_" + booking_id, "payment_intent.payment_failed", intent)
    answer = await live_api.http.post(
        "/webhooks/stripe", content=late, headers=signed(late, secret)
    )
    assert answer.status_code == 200
    assert answer.json()["outcome"] == "saga_ended"

    assert (await wallet(engine, user), await postings(engine, booking_id)) == after_first
    assert await events_of(engine, intent_id) == [
        ("payment_intent.succeeded", "signalled"),
        ("payment_intent.payment_failed", "saga_ended"),
    ]


async def test_duplicate_news_while_the_saga_waits_is_acted_on_once(
    api: Api,
    temporal_client: Client,
    engine: AsyncEngine,
    stripe_client: stripe.StripeClient,
    make_wallet: MakeWallet,
    booking_id: str,
) -> None:
    """Five copies of one success and then a failure, all before the saga could act."""
    user = await make_wallet(50_000)
    hold = (await redeem(api, user, booking_id)).json()
    intent = await stripe_client.v1.payment_intents.retrieve_async(hold["payment_intent_id"])
    secret = api.settings.stripe_webhook_secret
    success = intent_event(f"evt_ok_{booking_id}", "payment_intent.succeeded", intent.to_dict())
    failure = intent_event(
        f"evt_ko_{booking_id}", "payment_intent.payment_failed", intent.to_dict()
    )
    answers = await asyncio.gather(
        *[api.http.post("/webhooks/stripe", content=success, headers=signed(success, secret))
          for _ in range(5)]
    )  # fmt: skip
    assert sorted(a.json()["duplicate"] for a in answers) == [False, True, True, True, True]
    await api.http.post("/webhooks/stripe", content=failure, headers=signed(failure, secret))

    final = await wait_for_end(temporal_client, booking_id)
    assert final.decision == "payment_succeeded"
    assert final.status == "captured"
    assert [p[0] for p in await postings(engine, booking_id)] == ["hold", "capture"]


async def test_forged_or_missing_signature_is_rejected_and_signals_nothing(
    api: Api,
    temporal_client: Client,
    engine: AsyncEngine,
    stripe_client: stripe.StripeClient,
    make_wallet: MakeWallet,
    booking_id: str,
) -> None:
    user = await make_wallet(50_000)
    hold = (await redeem(api, user, booking_id)).json()
    intent = await stripe_client.v1.payment_intents.retrieve_async(hold["payment_intent_id"])
    forged = intent_event(f"evt_forged_{booking_id}", "payment_intent.succeeded", intent.to_dict())

    for headers in (
        signed(forged, "whsec_not_the_secret"),
        {"Content-Type": "application/json"},
        {"Stripe-Signature": "t=1,v1=deadbeef"},
    ):
        answer = await api.http.post("/webhooks/stripe", content=forged, headers=headers)
        assert answer.status_code == 400
        assert answer.json()["code"] == "invalid_signature"
    # Correctly signed, but not a Stripe event: refused the same way, nothing recorded.
    secret = api.settings.stripe_webhook_secret
    for body in (b"[1, 2]", b"not json", b"\xff\xfe", b'{"data": {}}'):
        answer = await api.http.post("/webhooks/stripe", content=body, headers=signed(body, secret))
        assert answer.status_code == 400, answer.text
        assert answer.json()["code"] == "invalid_signature"

    state = await api.http.get(f"/wallets/{user}/redemptions/{booking_id}", headers=api.service)
    assert state.json()["status"] == "held"
    assert state.json()["decision"] is None
    assert await events_of(engine, hold["payment_intent_id"]) == []
    await api.http.post(
        f"/wallets/{user}/release", json={"booking_id": booking_id}, headers=api.service
    )
    assert (await wait_for_end(temporal_client, booking_id)).status == "released"


async def test_webhook_for_an_unknown_payment_intent_is_acknowledged(
    api: Api, booking_id: str
) -> None:
    payload = intent_event(
        f"evt_unknown_{booking_id}", "payment_intent.succeeded",
        {"id": "pi_not_ours", "object": "payment_intent", "metadata": {}},
    )  # fmt: skip
    answer = await api.http.post(
        "/webhooks/stripe",
        content=payload,
        headers=signed(payload, api.settings.stripe_webhook_secret),
    )
    assert answer.status_code == 200
    assert answer.json() == {
        "received": True, "duplicate": False, "outcome": "unknown_payment_intent"
    }  # fmt: skip


async def test_redeem_refusals_are_clear_4xx_and_hold_nothing(
    api: Api, engine: AsyncEngine, make_wallet: MakeWallet, booking_id: str
) -> None:
    user = await make_wallet(10_000)
    cases = [
        ({"points": 20_000}, 422, "insufficient_points"),
        ({"points": 9_000, "order": 20_000}, 422, "redemption_cap_exceeded"),
        ({"currency": "USD", "points": 100}, 422, "currency_not_supported"),
        ({"points": 0}, 422, "validation_error"),
        ({"order": -1}, 422, "validation_error"),
        ({"points": 1.5}, 422, "validation_error"),
    ]
    for body, status, code in cases:
        answer = await redeem(api, user, booking_id, **body)  # type: ignore[arg-type]
        assert (answer.status_code, answer.json()["code"]) == (status, code), (body, answer.text)
    answer = await redeem(api, "user-without-wallet-" + booking_id, booking_id)
    assert (answer.status_code, answer.json()["code"]) == (404, "wallet_not_found")
    customer = await api.http.post(
        f"/wallets/{user}/redeem",
        json={"booking_id": booking_id, "order_amount": 1000, "currency": "VND", "points": 1},
        headers=api.customer(user),
    )
    assert customer.status_code == 403
    assert await postings(engine, booking_id) == []
    assert (await wallet(engine, user)).held == 0


async def test_repeated_redeem_same_answer_other_body_409(
    api: Api, temporal_client: Client, engine: AsyncEngine, make_wallet: MakeWallet, booking_id: str
) -> None:
    user = await make_wallet(50_000)
    first = await redeem(api, user, booking_id)
    again = await redeem(api, user, booking_id)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    other = await redeem(api, user, booking_id, points=10_000)
    assert (other.status_code, other.json()["code"]) == (409, "redemption_conflict")
    other_user = await make_wallet(50_000)
    stolen = await redeem(api, other_user, booking_id)
    assert stolen.status_code == 409
    assert [p[0] for p in await postings(engine, booking_id)] == ["hold"]
    await api.http.post(
        f"/wallets/{user}/release", json={"booking_id": booking_id}, headers=api.service
    )
    await wait_for_end(temporal_client, booking_id)
    # Released: the same body again starts the booking's next checkout, never the dead hold.
    after = await redeem(api, user, booking_id)
    assert after.status_code == 200, after.text
    assert after.json()["hold_id"] != first.json()["hold_id"]
    assert after.json()["run_id"] != first.json()["run_id"]
    assert [p[0] for p in await postings(engine, booking_id)] == ["hold", "release", "hold"]
    await api.http.post(
        f"/wallets/{user}/release", json={"booking_id": booking_id}, headers=api.service
    )
    assert (await wait_for_end(temporal_client, booking_id)).status == "released"
    assert (await wallet(engine, user)).held == 0


async def test_concurrent_redeems_on_one_wallet_never_overdraw(
    api: Api, temporal_client: Client, engine: AsyncEngine, make_wallet: MakeWallet
) -> None:
    user = await make_wallet(1_000)
    bookings = [f"bk-conc-{i}-{user}" for i in range(10)]
    answers = await asyncio.gather(
        *[redeem(api, user, b, points=300, order=1_000) for b in bookings]
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] * 3 + [422] * 7, [a.text for a in answers]
    assert all(a.json()["code"] == "insufficient_points" for a in answers if a.status_code == 422)
    assert await wallet(engine, user) == WalletRow(1_000, 900)
    for b, a in zip(bookings, answers, strict=True):
        if a.status_code == 200:
            await api.http.post(
                f"/wallets/{user}/release", json={"booking_id": b}, headers=api.service
            )
            await wait_for_end(temporal_client, b)
    assert (await wallet(engine, user)).held == 0
