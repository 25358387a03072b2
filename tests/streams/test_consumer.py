"""Booking and payment events through Kafka, against the embedded broker, a real worker and
PostgreSQL: points earned once whatever is delivered twice or wherever a consumer dies, poison
messages dead-lettered while the partition moves on, and nothing skipped while PostgreSQL is
down."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.service import RPCError

from api.temporal import LazyTemporalClient
from loyalty.core.db import make_engine
from loyalty.core.settings import Settings
from streams import kafka
from streams.consumer import IntakeConsumer
from tests.earning.helpers import accrual_result, postings
from tests.faults.conftest import OwnPostgres
from tests.harness import workers
from tests.harness.waits import eventually
from tests.streams.conftest import ConsumerProcesses, Producer, consuming, payment, read_all


def _new(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def test_events_in_points_earned_once_though_delivered_twice(
    settings: Settings,
    engine: AsyncEngine,
    temporal_client: Client,
    worker: None,
    producer: Producer,
) -> None:
    user, booking = _new("user"), _new("bk")
    body = payment(user, booking, 900_000)
    await producer.event(body)
    await producer.event(body)  # the booking platform's redelivery
    async with consuming(settings, engine) as consumer:
        await eventually(lambda: _done(consumer, 2))
        state = await accrual_result(temporal_client, booking)
    assert (consumer.counts.accepted, consumer.counts.duplicates) == (1, 1)
    assert (state.status, state.outcome and state.outcome.points) == ("posted", 900)
    assert await postings(engine, user) == [("earn", 900, booking)]
    assert await kafka.consumer_lag(settings) == {
        settings.kafka_booking_topic: {str(p): 0 for p in range(4)},
        settings.kafka_payment_topic: {str(p): 0 for p in range(4)},
    }


async def _done(consumer: IntakeConsumer, n: int) -> bool:
    c = consumer.counts
    return c.accepted + c.duplicates + c.dead_lettered >= n


class _Killed(Exception):
    pass


class _DiesBeforeCommit(IntakeConsumer):
    """Accepts its batch, then dies where it would commit the offsets."""

    async def _commit(self, consumer: object, batch: object) -> None:
        raise _Killed


async def test_consumer_killed_before_its_commit_posts_nothing_twice(
    settings: Settings,
    engine: AsyncEngine,
    temporal_client: Client,
    worker: None,
    producer: Producer,
) -> None:
    users = [_new("user") for _ in range(3)]
    bookings = [_new("bk") for _ in range(3)]
    for user, booking in zip(users, bookings, strict=True):
        await producer.event(payment(user, booking, 100_000))
    dying = _DiesBeforeCommit(settings, engine, LazyTemporalClient(settings))
    try:
        async with consuming(settings, engine, dying):
            await eventually(lambda: _done(dying, 3))
    except _Killed:
        pass
    assert dying.counts.accepted == 3
    # Nothing was committed: the next consumer of the group reads all three again.
    async with consuming(settings, engine) as successor:
        await eventually(lambda: _done(successor, 3))
        for booking in bookings:
            await accrual_result(temporal_client, booking)
    assert (successor.counts.accepted, successor.counts.duplicates) == (0, 3)
    for user, booking in zip(users, bookings, strict=True):
        assert await postings(engine, user) == [("earn", 100, booking)]


async def test_poison_messages_go_to_the_dead_letter_topic_and_the_partition_moves_on(
    settings: Settings,
    engine: AsyncEngine,
    temporal_client: Client,
    worker: None,
    producer: Producer,
) -> None:
    user, booking = _new("user"), _new("bk")
    reused = payment(user, _new("bk"), 5_000)
    conflicting = payment(user, _new("bk"), 6_000, event_id=reused["event"]["event_id"])
    # One key, so one partition: each poison message sits before a good one.
    poison: list[bytes | dict[str, object]] = [
        b"{not json",
        {"event": {"type": "payment_succeeded", "booking_id": booking}},  # schema violation
        reused,  # fine on its own
        conflicting,  # the same event id with another body
    ]
    for body in poison:
        await producer.send(body, key=booking)
    await producer.event(payment(user, booking, 300_000))
    async with consuming(settings, engine) as consumer:
        await eventually(lambda: _done(consumer, 5))
        state = await accrual_result(temporal_client, booking)
    assert (state.status, state.outcome and state.outcome.points) == ("posted", 300)
    dead: list[ConsumerRecord] = await read_all(settings, settings.kafka_dead_letter_topic, 3)
    assert [r.value for r in dead] == [
        b"{not json",
        json.dumps(poison[1]).encode(),
        json.dumps(conflicting).encode(),
    ]
    errors = [dict(r.headers)["error"].decode() for r in dead]
    assert errors[0].startswith("not a booking event")
    assert errors[1].startswith("not a booking event")
    assert errors[2].startswith("idempotency_conflict")
    assert all(r.key == booking.encode() for r in dead)
    assert consumer.counts.dead_lettered == 3


async def test_two_consumers_share_the_partitions_and_one_is_killed(
    settings: Settings,
    engine: AsyncEngine,
    temporal_client: Client,
    worker: None,
    producer: Producer,
    consumer_processes: ConsumerProcesses,
) -> None:
    first, _ = await asyncio.gather(consumer_processes.start(), consumer_processes.start())
    users = [_new("user") for _ in range(24)]
    bookings = [_new("bk") for _ in range(24)]
    for user, booking in zip(users[:12], bookings[:12], strict=True):
        await producer.event(payment(user, booking, 10_000))
    for booking in bookings[:12]:
        await eventually(lambda b=booking: _started(temporal_client, b))
        await accrual_result(temporal_client, booking)
    # Both took part: each accepted some of the first half.
    assert all("handled" in consumer_processes.log(i) for i in (0, 1)), [
        consumer_processes.log(i) for i in (0, 1)
    ]
    consumer_processes.kill(first)
    for user, booking in zip(users[12:], bookings[12:], strict=True):
        await producer.event(payment(user, booking, 20_000))
    for booking in bookings[12:]:
        await eventually(lambda b=booking: _started(temporal_client, b), seconds=90)
        await accrual_result(temporal_client, booking)
    for i, (user, booking) in enumerate(zip(users, bookings, strict=True)):
        assert await postings(engine, user) == [("earn", 10 if i < 12 else 20, booking)]


async def test_postgres_stopped_while_consuming_skips_nothing(
    settings: Settings, temporal_client: Client, producer: Producer, tmp_path: Path
) -> None:
    own_pg = await asyncio.to_thread(OwnPostgres, tmp_path / "pg")
    own_engine: AsyncEngine | None = None
    try:
        import devstack

        await asyncio.to_thread(devstack.run_migrations, own_pg.owner_url)
        own_engine = make_engine(own_pg.url, pool_size=5)
        own = settings.model_copy(update={"database_url": own_pg.url})
        users = [_new("user") for _ in range(10)]
        bookings = [_new("bk") for _ in range(10)]
        async with (
            workers.in_process(temporal_client, own_engine, own),
            consuming(own, own_engine) as consumer,
        ):
            for user, booking in zip(users[:5], bookings[:5], strict=True):
                await producer.event(payment(user, booking, 50_000))
            await eventually(lambda: _done(consumer, 5))
            await asyncio.to_thread(own_pg.stop)
            for user, booking in zip(users[5:], bookings[5:], strict=True):
                await producer.event(payment(user, booking, 70_000))
            await eventually(lambda: _retried(consumer))
            await asyncio.sleep(1)
            assert consumer.counts.accepted == 5  # held, not skipped
            await asyncio.to_thread(own_pg.start)
            await eventually(lambda: _done(consumer, 10), seconds=60)
            for booking in bookings:
                await accrual_result(temporal_client, booking, within=90)
        assert consumer.counts.dead_lettered == 0
        for i, (user, booking) in enumerate(zip(users, bookings, strict=True)):
            assert await postings(own_engine, user) == [("earn", 50 if i < 5 else 70, booking)]
        lag = await kafka.consumer_lag(own)
        assert all(n == 0 for parts in lag.values() for n in parts.values()), lag
    finally:
        if own_engine is not None:
            await own_engine.dispose()
        await asyncio.to_thread(own_pg.close)


async def _started(client: Client, booking_id: str) -> bool:
    try:
        await client.get_workflow_handle(f"accrual-{booking_id}").describe()
    except RPCError:
        return False
    return True


async def _retried(consumer: IntakeConsumer) -> bool:
    return consumer.counts.retries > 0
