"""A checkout's capture tells the customer their points were redeemed, and its release that the
held points are back: each once, in the outbox in the same transaction as the posting, keyed by
the hold, however often the activity runs; then delivered once to a real local receiver."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.notifications import NotificationActivities
from activities.redemption import RedemptionActivities
from loyalty import ledger
from loyalty.core import db
from loyalty.core.errors import HoldNotOpen
from loyalty.core.settings import Settings
from loyalty.notifications.models import Notification
from loyalty.redemption import holds
from loyalty.redemption.contracts import RedemptionState, SettleHold, workflow_id_for
from tests.harness.api import Api
from tests.harness.receiver import Receiver
from tests.harness.waits import workflow_result

MakeWallet = Callable[..., Awaitable[str]]

_OUTBOX = text(
    "SELECT idempotency_key, kind, payload FROM notification_outbox "
    "WHERE user_id = :u AND channel = 'notify' "
    "ORDER BY notification_id"
)

_UNDELIVERED = text(
    "SELECT count(*) FROM notification_outbox "
    "WHERE user_id = :u AND channel = 'notify' AND delivered_at IS NULL"
)


@pytest.fixture
def settings_overrides(receiver: Receiver) -> dict[str, Any]:
    return {"notify_url": receiver.url}


async def _outbox(engine: AsyncEngine, user: str) -> list[tuple[str, str, dict[str, Any]]]:
    async with engine.connect() as conn:
        return [(r[0], r[1], r[2]) for r in await conn.execute(_OUTBOX, {"u": user})]


async def _held(engine: AsyncEngine, user: str, points: int) -> SettleHold:
    """An open hold of `points` on the user's wallet, and the command that settles it."""
    hold_id, booking = uuid.uuid4(), f"bk-{uuid.uuid4().hex[:12]}"
    async with db.transaction(engine) as conn:
        await ledger.hold(
            conn,
            user_id=user,
            points=points,
            idempotency_key=f"test-hold:{hold_id}",
            expires_at=datetime.now(UTC) + timedelta(minutes=15),
            booking_id=booking,
            hold_id=hold_id,
        )
    return SettleHold(
        hold_id=str(hold_id),
        booking_id=booking,
        payment_intent_id="pi_test",
        discount_minor=points,
        currency="VND",
        reason="test",
    )


async def test_capture_records_one_points_redeemed_however_often_it_runs(
    engine: AsyncEngine, settings: Settings, make_wallet: MakeWallet, receiver: Receiver
) -> None:
    user = await make_wallet(1_000)
    command = await _held(engine, user, 300)
    activity = RedemptionActivities(engine, settings)

    # The saga's activity, run again as a retry after a lost answer would run it.
    for _ in range(3):
        await ActivityEnvironment().run(activity.capture, command)

    key = f"points_redeemed:{command.hold_id}"
    assert await _outbox(engine, user) == [
        (
            key,
            "points_redeemed",
            {
                "booking_id": command.booking_id,
                "hold_id": command.hold_id,
                "points": 300,
                "discount_minor": 300,
                "currency": "VND",
            },
        )
    ]
    # Delivered once, however often it is sent (the outbox row is the one above).
    async with db.transaction(engine) as conn:
        note = await holds.capture(conn, command)  # a replayed capture: the same notification
    assert note.idempotency_key == key
    assert await _send_twice(engine, receiver, note) == ["delivered", "already_delivered"]
    assert [(r["kind"], r["key"]) for r in receiver.received] == [("points_redeemed", key)]


async def test_release_records_one_hold_released(
    engine: AsyncEngine, settings: Settings, make_wallet: MakeWallet
) -> None:
    user = await make_wallet(1_000)
    command = await _held(engine, user, 400)
    activity = RedemptionActivities(engine, settings)

    for _ in range(2):
        await ActivityEnvironment().run(activity.release, command)

    assert await _outbox(engine, user) == [
        (
            f"hold_released:{command.hold_id}",
            "hold_released",
            {"booking_id": command.booking_id, "hold_id": command.hold_id, "points": 400},
        )
    ]


async def test_a_refused_settlement_records_nothing(
    engine: AsyncEngine, settings: Settings, make_wallet: MakeWallet
) -> None:
    """A release of a captured hold is refused (hold_not_open): the customer hears of the
    capture only, since the notification lives and dies with its posting."""
    user = await make_wallet(1_000)
    command = await _held(engine, user, 100)
    async with db.transaction(engine) as conn:
        await holds.capture(conn, command)

    with pytest.raises(HoldNotOpen):
        async with db.transaction(engine) as conn:
            await holds.release(conn, command)

    assert [kind for _, kind, _ in await _outbox(engine, user)] == ["points_redeemed"]


@pytest.mark.usefixtures("worker")
async def test_a_checkout_released_and_one_confirmed_through_the_saga(
    api: Api,
    engine: AsyncEngine,
    make_wallet: MakeWallet,
    temporal_client: Client,
    receiver: Receiver,
) -> None:
    user = await make_wallet(5_000)
    receiver.fail_first = 1  # the saga's first delivery fails; its retry delivers

    async def checkout(points: int, decision: str) -> RedemptionState:
        booking = f"bk-{uuid.uuid4().hex[:12]}"
        body = {"booking_id": booking, "order_amount": 100_000, "currency": "VND"}
        redeemed = await api.http.post(
            f"/wallets/{user}/redeem", json={**body, "points": points}, headers=api.service
        )
        assert redeemed.status_code == 200, redeemed.text
        decided = await api.http.post(
            f"/wallets/{user}/{decision}", json={"booking_id": booking}, headers=api.service
        )
        assert decided.status_code == 202, decided.text
        return await workflow_result(temporal_client, workflow_id_for(booking), RedemptionState, 60)

    released = await checkout(700, "release")
    captured = await checkout(900, "confirm")

    assert (released.status, captured.status) == ("released", "captured")
    assert released.hold is not None and captured.hold is not None
    notes = [(key, kind, payload["points"]) for key, kind, payload in await _outbox(engine, user)]
    keys = [f"hold_released:{released.hold.hold_id}", f"points_redeemed:{captured.hold.hold_id}"]
    assert notes == [
        (keys[0], "hold_released", 700),
        (keys[1], "points_redeemed", 900),
    ]
    # The saga delivered each once (the receiver saw both after its one refusal).
    assert sorted(receiver.keys(user)) == sorted(keys)
    async with engine.connect() as conn:
        undelivered = await conn.execute(_UNDELIVERED, {"u": user})
        assert undelivered.scalar_one() == 0


async def _send_twice(engine: AsyncEngine, receiver: Receiver, note: Notification) -> list[str]:
    async with httpx.AsyncClient(timeout=5) as http:
        acts = NotificationActivities(engine, receiver.url, http)
        return [await ActivityEnvironment().run(acts.send, note) for _ in range(2)]
