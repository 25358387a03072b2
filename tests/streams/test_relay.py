"""The outbox relay against a real receiver, PostgreSQL and the embedded broker: delivered once
and in order per wallet through a receiver's outage, a refusal parks the row without failing the
accrual that wrote it, operators see and requeue parked rows, and every outbound event validates
against its JSON Schema (docs/events/)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from loyalty.core.db import transaction
from loyalty.core.settings import PROJECT_ROOT, Settings
from loyalty.earning.refunds import _clawed, _returned
from loyalty.expiry import rules as expiry_rules
from loyalty.expiry.contracts import ReminderLot
from loyalty.notifications import outbox
from loyalty.notifications.models import NotificationKind
from loyalty.redemption.contracts import SettleHold
from loyalty.redemption.holds import settled_notification
from loyalty.vouchers.contracts import VoucherOut, delivery_notification
from streams.relay import OutboxRelay
from tests.earning.helpers import accrual_result, paid
from tests.harness.api import Api
from tests.harness.receiver import Receiver
from tests.harness.waits import eventually
from tests.streams.conftest import read_all

SCHEMAS = PROJECT_ROOT / "docs" / "events"


@pytest.fixture
def settings_overrides(settings_overrides: dict[str, Any], receiver: Receiver) -> dict[str, Any]:
    return {**settings_overrides, "outbox_relay": True}


@contextlib.asynccontextmanager
async def relaying(settings: Settings, engine: AsyncEngine) -> AsyncIterator[OutboxRelay]:
    relay = OutboxRelay(settings, engine, poll_seconds=0.05)
    task = asyncio.create_task(relay.run())
    try:
        yield relay
    finally:
        relay.stop()
        await asyncio.wait_for(task, 30)


async def _earn(api: Api, user: str, booking: str, amount: int) -> None:
    response = await api.http.post(
        f"/wallets/{user}/earn",
        headers=api.service,
        json={"booking_id": booking, "amount_paid": amount, "currency": "VND"},
    )
    assert response.status_code in (200, 201), response.text


def _now(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def checked() -> bool:
        return check()

    return checked


async def _rows(engine: AsyncEngine, user: str, channel: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT notification_id, idempotency_key, kind, delivered_at, parked_at, "
                "last_error, attempts FROM notification_outbox "
                "WHERE user_id = :u AND channel = :c ORDER BY notification_id"
            ),
            {"u": user, "c": channel},
        )
        return [dict(r) for r in rows.mappings()]


async def test_receiver_down_then_back_every_row_once_in_order_per_wallet(
    settings: Settings, engine: AsyncEngine, api: Api, receiver: Receiver
) -> None:
    users = [f"user-{uuid.uuid4().hex[:10]}" for _ in range(2)]
    for n in range(4):
        for user in users:
            await _earn(api, user, f"bk-{uuid.uuid4().hex[:10]}", 100_000 * (n + 1))
    receiver.fail_first = 6  # the notification service is down for its first six requests
    async with relaying(settings, engine) as relay:
        for user in users:
            expected = [r["idempotency_key"] for r in await _rows(engine, user, "notify")]
            assert len(expected) == 4
            await eventually(_now(lambda u=user, e=expected: receiver.keys(u) == e))
    assert relay.counts["notify"].retried >= 6
    for user in users:
        rows = await _rows(engine, user, "notify")
        assert all(r["delivered_at"] is not None and r["parked_at"] is None for r in rows)
        # In the order written, each once, although the first tries failed.
        assert receiver.keys(user) == [r["idempotency_key"] for r in rows]
        points = [r["payload"]["points"] for r in receiver.received if r["user_id"] == user]
        assert points == [100, 200, 300, 400]


async def test_a_refusal_parks_the_row_and_the_accrual_still_completes(
    settings: Settings,
    engine: AsyncEngine,
    api: Api,
    receiver: Receiver,
    temporal_client: Client,
    worker: None,
) -> None:
    user, booking = f"user-{uuid.uuid4().hex[:10]}", f"bk-{uuid.uuid4().hex[:10]}"
    # The service refuses everything (other tests' rows too, parked alike) until fixed.
    receiver.fail_first, receiver.failure_status = 10**6, 422
    async with relaying(settings, engine):
        response = await paid(api, user, booking, 700_000)
        assert response.status_code == 202, response.text
        state = await accrual_result(temporal_client, booking)
        assert state.status == "posted"
        [row] = await eventually(lambda: _parked(engine, user))
        assert row["last_error"].startswith("HTTP 422")
        assert receiver.received == []

        status = await api.http.get("/outbox", headers=api.admin)
        assert status.status_code == 200, status.text
        body = status.json()
        assert row["notification_id"] in [p["notification_id"] for p in body["parked"]]
        assert body["channels"]["notify"]["parked"] >= 1
        partitions = body["consumer_lag"][settings.kafka_booking_topic]
        assert set(partitions) == {"0", "1", "2", "3"}

        # The operator fixed the cause: requeued, it goes out once.
        receiver.fail_first = 0
        again = await api.http.post(f"/outbox/{row['notification_id']}/retry", headers=api.admin)
        assert again.status_code == 200, again.text
        await eventually(_now(lambda: receiver.keys(user) == [row["idempotency_key"]]))
    missing = await api.http.post(f"/outbox/{2**62}/retry", headers=api.admin)
    assert missing.status_code == 404


async def _parked(engine: AsyncEngine, user: str) -> list[dict[str, Any]]:
    return [r for r in await _rows(engine, user, "notify") if r["parked_at"] is not None]


async def test_outbound_events_validate_against_their_schemas(
    settings: Settings, engine: AsyncEngine, api: Api
) -> None:
    user = f"user-{uuid.uuid4().hex[:10]}"
    # A real earn big enough to move the wallet up a tier: points.earned and tier.changed.
    await _earn(api, user, f"bk-{uuid.uuid4().hex[:10]}", 6_000_000)
    # The other kinds, as their code paths build them, written as they are.
    hold = SettleHold(
        hold_id=str(uuid.uuid4()),
        booking_id="bk-x",
        payment_intent_id=None,
        discount_minor=300,
        currency="VND",
        reason="paid",
    )
    refund = {"booking_id": "bk-y", "refund_id": "r1", "user_id": user}
    clawed = {
        "points_clawed_back": 70,
        "debt_recorded": 5,
        "pending_reduced": 0,
        "points_returned": 0,
    }
    clawed |= {"pending_voided": False}
    voucher = VoucherOut(
        voucher_id=uuid.uuid4(),
        code="SECRET-CODE",
        status="active",
        product_id=uuid.uuid4(),
        product_name="Lounge pass",
        user_id=user,
        price_points=500,
        purchase_id=uuid.uuid4(),
        issued_at=datetime.now(UTC),
        expires_at=None,
        used_at=None,
        used_reference=None,
    )
    notes = [
        settled_notification(
            NotificationKind.POINTS_REDEEMED,
            hold,
            user_id=user,
            points=300,
            discount_minor=300,
            currency="VND",
        ),
        settled_notification(
            NotificationKind.HOLD_RELEASED,
            hold.model_copy(update={"hold_id": str(uuid.uuid4())}),
            user_id=user,
            points=50,
        ),
        *_returned(refund, 40).notifications,  # type: ignore[arg-type]
        *_clawed({**refund, **clawed}).notifications,  # type: ignore[arg-type]
        delivery_notification(voucher),
        *[
            reminder.notification
            for reminder in expiry_rules.reminders(
                [
                    ReminderLot(
                        lot_id=1,
                        wallet_id=uuid.uuid4(),
                        user_id=user,
                        remaining=120,
                        expires_at=datetime.now(UTC),
                    )
                ],
                expiry_id=str(uuid.uuid4()),
            )
        ],
    ]
    async with transaction(engine) as conn:
        await outbox.enqueue(conn, notes)
    events = await _rows(engine, user, "event")
    assert len(events) == 8
    async with relaying(settings, engine):
        records = await read_all(
            settings,
            settings.kafka_events_topic,
            until=lambda got: sum(r.key == user.encode() for r in got) >= 8,
        )
    mine = [json.loads(r.value) for r in records if r.key == user.encode()]
    assert [m["type"] for m in mine] == [e["kind"] for e in events]
    schemas = {p.name.removesuffix(".schema.json") for p in SCHEMAS.glob("*.schema.json")}
    assert {m["type"] for m in mine} == schemas
    for message in mine:
        schema = json.loads((SCHEMAS / f"{message['type']}.schema.json").read_text())
        jsonschema.validate(message, schema, format_checker=jsonschema.FormatChecker())
        assert message["wallet"] == user
    voucher_event = next(m for m in mine if m["type"] == "voucher.issued")
    assert "code" not in voucher_event["payload"]  # the customer's alone
