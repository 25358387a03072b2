"""Kafka in and out against the embedded broker: every test has its own topics and consumer
group (the broker lives for the session), a producer that keys by booking id as the booking
platform does, and consumers in this process or as `python -m streams.consumer` processes it
may kill."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncEngine

import devstack
from api.temporal import LazyTemporalClient
from loyalty.core.settings import PROJECT_ROOT, Settings
from streams import kafka
from streams.consumer import IntakeConsumer
from tests.harness.receiver import Receiver
from tests.harness.workers import settings_env


@pytest.fixture
def settings_overrides(kafka_bootstrap: str, receiver: Receiver) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    return {
        "kafka_bootstrap_servers": kafka_bootstrap,
        "kafka_booking_topic": f"booking-{run}",
        "kafka_payment_topic": f"payment-{run}",
        "kafka_dead_letter_topic": f"dead-{run}",
        "kafka_events_topic": f"events-{run}",
        "kafka_consumer_group": f"intake-{run}",
        "kafka_session_timeout_ms": 3000,
        "notify_url": receiver.url,
        "accrual_wait_for_payment_seconds": 120,
    }


def payment(user_id: str, booking_id: str, amount: int, **extra: Any) -> dict[str, Any]:
    """A payment_succeeded event as the intake's body (`{"event": ...}`)."""
    return {
        "event": {
            "event_id": extra.pop("event_id", f"ev-{uuid.uuid4().hex[:12]}"),
            "type": "payment_succeeded",
            "booking_id": booking_id,
            "user_id": user_id,
            "payment_id": f"pi-{booking_id}",
            "amount_paid": amount,
            "currency": "VND",
            **extra,
        }
    }


class Producer:
    def __init__(self, settings: Settings, producer: AIOKafkaProducer) -> None:
        self.settings = settings
        self.producer = producer

    async def send(
        self, body: dict[str, Any] | bytes, *, key: str, topic: str | None = None
    ) -> None:
        value = body if isinstance(body, bytes) else json.dumps(body).encode()
        await self.producer.send_and_wait(
            topic or self.settings.kafka_payment_topic, value=value, key=key.encode()
        )

    async def event(self, body: dict[str, Any]) -> None:
        await self.send(body, key=body["event"]["booking_id"])


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[Producer]:
    await kafka.ensure_topics(settings)
    p = kafka.producer(settings)
    await p.start()
    yield Producer(settings, p)
    await p.stop()


@contextlib.asynccontextmanager
async def consuming(
    settings: Settings, engine: AsyncEngine, consumer: IntakeConsumer | None = None
) -> AsyncIterator[IntakeConsumer]:
    """An intake consumer running in this process until the block ends."""
    consumer = consumer or IntakeConsumer(settings, engine, LazyTemporalClient(settings))
    task = asyncio.create_task(consumer.run())
    try:
        yield consumer
    finally:
        consumer.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 30)


async def read_all(
    settings: Settings,
    topic: str,
    expect: int = 0,
    within: float = 30,
    until: Callable[[list[ConsumerRecord]], bool] | None = None,
) -> list[ConsumerRecord]:
    """The messages of `topic` (all partitions, read without a group) until there are `expect`
    of them or `until(messages)` holds."""
    done = until or (lambda got: len(got) >= expect)
    reader = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka_bootstrap_servers, auto_offset_reset="earliest"
    )
    await reader.start()
    records: list[ConsumerRecord] = []
    try:
        async with asyncio.timeout(within):
            while not done(records):
                for batch in (await reader.getmany(timeout_ms=500)).values():
                    records.extend(batch)
    finally:
        await reader.stop()
    return records


class ConsumerProcesses:
    """`python -m streams.consumer` processes for the test's settings, killable at will."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.env = settings_env(settings)
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def log(self, index: int) -> str:
        path = self.log_dir / f"consumer-{index}.log"
        return path.read_text() if path.exists() else ""

    async def start(self) -> subprocess.Popen[bytes]:
        index = len(self.procs)
        proc = devstack.start_process(
            [sys.executable, "-m", "streams.consumer"],
            log_file=self.log_dir / f"consumer-{index}.log",
            env={**self.env, "PYTHONPATH": str(PROJECT_ROOT)},
        )
        self.procs.append(proc)
        async with asyncio.timeout(30):
            while "consuming" not in self.log(index):
                assert proc.poll() is None, self.log(index)
                await asyncio.sleep(0.1)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop_all(self) -> None:
        for proc in self.procs:
            devstack.stop_process(proc)


@pytest.fixture
def consumer_processes(settings: Settings, tmp_path: Path) -> Iterator[ConsumerProcesses]:
    processes = ConsumerProcesses(settings, tmp_path)
    yield processes
    processes.stop_all()
