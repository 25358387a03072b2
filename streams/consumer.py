"""The booking and payment event consumer: `python -m streams.consumer` (the run command starts
one; start more with the same KAFKA_CONSUMER_GROUP and they share the partitions).

Each message is the body of POST /booking-events (`{"event": {...}}`) and goes through the very
same intake (api.temporal.booking_events.receive): the event id is claimed in PostgreSQL in the
transaction that commits only once the workflow has the event, so a redelivered message does
nothing new. The offset is committed only after every message before it in its partition was
accepted (or dead-lettered): a consumer killed at any point leaves its messages to the next
owner of the partition, which finds them already claimed.

- A message that can never be accepted (not JSON, not the schema, a refused event such as a
  reused event id with another body) goes to the dead-letter topic with its original bytes,
  key and the error in headers; the partition moves on.
- Anything else (PostgreSQL, Temporal or Kafka unreachable) is retried with backoff, the
  message held where it is: nothing behind it in its partition is committed meanwhile.

Messages are keyed by booking id, so one booking's events are in one partition, in order. A
batch runs its bookings concurrently and each booking's events one after another."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import pydantic
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from sqlalchemy.ext.asyncio import AsyncEngine

from api.temporal import LazyTemporalClient
from api.temporal import booking_events as booking_intake
from loyalty.core import db
from loyalty.core.errors import LoyaltyError
from loyalty.core.settings import Settings
from loyalty.earning.events import BookingEventIn
from streams import kafka

log = logging.getLogger("streams.consumer")

MAX_BACKOFF_SECONDS = 5.0
CONCURRENCY = 64  # bookings of one batch handled at once
LAG_LOG_SECONDS = 30.0


class _Stopped(Exception):
    """The consumer was told to stop while a message still waited to be accepted."""


class Unacceptable(Exception):
    """This message can never be accepted: it goes to the dead-letter topic."""


@dataclass
class Counts:
    accepted: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    retries: int = 0
    by_outcome: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def parse(value: bytes | None) -> BookingEventIn:
    """The message as the intake's body, or Unacceptable."""
    if value is None:
        raise Unacceptable("empty message")
    try:
        return BookingEventIn.model_validate_json(value)
    except pydantic.ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        raise Unacceptable(f"not a booking event: {json.dumps(errors, default=str)}") from exc


class IntakeConsumer:
    def __init__(
        self, settings: Settings, engine: AsyncEngine, temporal: LazyTemporalClient
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.temporal = temporal
        self.counts = Counts()
        self._stopping = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None

    def stop(self) -> None:
        self._stopping.set()

    async def accept(self, record: ConsumerRecord) -> str:
        """Hand one message to the intake; its outcome, or Unacceptable."""
        body = parse(record.value)
        try:
            async with db.transaction(self.engine) as conn:
                client = await self.temporal.get()
                ack = await booking_intake.receive(conn, client, self.settings, body.event)
        except LoyaltyError as exc:
            if exc.status_code >= 500:  # unavailable: not the message's fault
                raise
            raise Unacceptable(f"{exc.code}: {exc.message}") from exc
        return ack.outcome

    async def handle(self, record: ConsumerRecord, dead_letters: _DeadLetters) -> None:
        """Accept or dead-letter the message, retrying anything else until it passes (or the
        consumer stops: then _Stopped, and the batch is not committed)."""
        delay = 0.1
        while True:
            if self._stopping.is_set():
                raise _Stopped
            try:
                try:
                    outcome = await self.accept(record)
                except Unacceptable as why:
                    await dead_letters.send(record, str(why))
                    self.counts.dead_lettered += 1
                    return
                self.counts.by_outcome[outcome] += 1
                if outcome == "duplicate":
                    self.counts.duplicates += 1
                else:
                    self.counts.accepted += 1
                return
            except Exception as exc:  # infrastructure: hold the message and try again
                self.counts.retries += 1
                log.warning(
                    "event at %s[%d]@%d not accepted yet, retrying in %.1fs: %s: %s",
                    record.topic,
                    record.partition,
                    record.offset,
                    delay,
                    type(exc).__name__,
                    exc,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)

    async def handle_batch(
        self, records: Sequence[ConsumerRecord], dead_letters: _DeadLetters
    ) -> None:
        """One booking's messages in order, different bookings at once."""
        by_key: dict[tuple[str, int, bytes | None], list[ConsumerRecord]] = defaultdict(list)
        for record in records:
            by_key[(record.topic, record.partition, record.key)].append(record)
        limit = asyncio.Semaphore(CONCURRENCY)

        async def run(group: list[ConsumerRecord]) -> None:
            async with limit:
                for record in group:
                    await self.handle(record, dead_letters)

        async with asyncio.TaskGroup() as tasks:
            for group in by_key.values():
                tasks.create_task(run(group))

    async def run(self) -> None:
        settings = self.settings
        await kafka.ensure_topics(settings)
        consumer = AIOKafkaConsumer(
            *kafka.intake_topics(settings),
            bootstrap_servers=kafka.bootstrap_servers(settings),
            group_id=settings.kafka_consumer_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=500,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=max(300, settings.kafka_session_timeout_ms // 6),
        )
        producer = kafka.producer(settings)
        await producer.start()
        await consumer.start()
        self._consumer = consumer
        dead_letters = _DeadLetters(producer, settings.kafka_dead_letter_topic)
        log.info(
            "consuming %s as group %s",
            ", ".join(kafka.intake_topics(settings)),
            settings.kafka_consumer_group,
        )
        next_lag_log = time.monotonic() + LAG_LOG_SECONDS
        try:
            while not self._stopping.is_set():
                batch = await consumer.getmany(timeout_ms=500)
                records = [r for rs in batch.values() for r in rs]
                if records:
                    if not await self._handled(records, dead_letters):
                        break  # stopped while retrying: nothing of this batch is committed
                    await self._commit(consumer, batch)
                    log.info(
                        "handled %d events from %s; so far accepted %d, duplicates %d, "
                        "dead-lettered %d",
                        len(records),
                        sorted(f"{tp.topic}[{tp.partition}]" for tp in batch),
                        self.counts.accepted,
                        self.counts.duplicates,
                        self.counts.dead_lettered,
                    )
                if time.monotonic() >= next_lag_log:
                    next_lag_log = time.monotonic() + LAG_LOG_SECONDS
                    await self._log_lag(consumer)
        finally:
            self._consumer = None
            await consumer.stop()
            await producer.stop()

    async def _handled(self, records: Sequence[ConsumerRecord], dead_letters: _DeadLetters) -> bool:
        """Whether the whole batch was handled (False: the consumer stopped first)."""
        stopped = False
        try:
            await self.handle_batch(records, dead_letters)
        except* _Stopped:
            stopped = True
        return not stopped

    async def _commit(
        self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list[ConsumerRecord]]
    ) -> None:
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items() if records}
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # The partitions moved to another consumer (a rebalance): it will read these
            # messages again and find them claimed. Nothing is lost.
            log.warning("commit of %s failed, left to the next owner: %s", offsets, exc)

    async def _log_lag(self, consumer: AIOKafkaConsumer) -> None:
        with contextlib.suppress(KafkaError):
            assigned = list(consumer.assignment())
            if not assigned:
                return
            ends = await consumer.end_offsets(assigned)
            lag = {
                f"{tp.topic}[{tp.partition}]": ends[tp] - (await consumer.position(tp))
                for tp in assigned
            }
            log.info("consumer lag %s (counts %s)", lag, self.counts)


class _DeadLetters:
    def __init__(self, producer: object, topic: str) -> None:
        self._producer = producer
        self.topic = topic

    async def send(self, record: ConsumerRecord, error: str) -> None:
        headers = [
            ("error", error.encode()[:4000]),
            ("source-topic", record.topic.encode()),
            ("source-partition", str(record.partition).encode()),
            ("source-offset", str(record.offset).encode()),
        ]
        await self._producer.send_and_wait(  # type: ignore[attr-defined]
            self.topic, value=record.value, key=record.key, headers=headers
        )
        log.warning(
            "dead-lettered %s[%d]@%d: %s", record.topic, record.partition, record.offset, error
        )


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    settings = Settings()
    if not settings.database_url:
        raise SystemExit("DATABASE_URL is not set (the run command sets it)")
    engine = db.make_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        points_validity_months=settings.points_validity_months,
    )
    consumer = IntakeConsumer(settings, engine, LazyTemporalClient(settings))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, consumer.stop)
    try:
        await consumer.run()
    finally:
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
