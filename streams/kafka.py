"""Kafka clients of the service, all aiokafka (asyncio, like the rest of the service; it joins a
consumer group on the embedded Tansu broker in about 3 s, where confluent-kafka's first join took
about 23 s with its default timeouts).

The producer waits for every in-sync replica (acks=all) and is not idempotent: Tansu does not
support idempotent producers, and every consumer of ours is idempotent by event id anyway."""

from __future__ import annotations

import contextlib
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from loyalty.core.settings import Settings

log = logging.getLogger(__name__)


def bootstrap_servers(settings: Settings) -> str:
    if not settings.kafka_bootstrap_servers:
        raise RuntimeError("KAFKA_BOOTSTRAP_SERVERS is not set (the run command sets it)")
    return settings.kafka_bootstrap_servers


def intake_topics(settings: Settings) -> list[str]:
    return [settings.kafka_booking_topic, settings.kafka_payment_topic]


def all_topics(settings: Settings) -> list[str]:
    return [
        *intake_topics(settings),
        settings.kafka_dead_letter_topic,
        settings.kafka_events_topic,
    ]


async def ensure_topics(settings: Settings) -> None:
    """Create the service's topics that do not exist yet (a cluster's own are left alone)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in all_topics(settings) if t not in existing]
        if not missing:
            return
        partitions = settings.kafka_topic_partitions
        # Another process may create them first.
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(
                [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in missing]
            )
        log.info("created topics %s", missing)
    finally:
        await admin.close()


def producer(settings: Settings, **options: object) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers(settings),
        acks="all",
        enable_idempotence=False,
        **options,
    )


async def consumer_lag(settings: Settings) -> dict[str, dict[str, int]]:
    """Per intake topic and partition: messages not yet committed by the consumer group (end
    offset minus committed offset). Asked of a consumer that joins no group (no rebalance)."""
    probe = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers(settings),
        group_id=settings.kafka_consumer_group,
        enable_auto_commit=False,
    )
    await probe.start()
    try:
        await probe.topics()  # fetches the cluster's metadata
        partitions = [
            TopicPartition(topic, p)
            for topic in intake_topics(settings)
            for p in sorted(probe.partitions_for_topic(topic) or set())
        ]
        ends = await probe.end_offsets(partitions) if partitions else {}
        lag: dict[str, dict[str, int]] = {}
        for tp in partitions:
            committed = await probe.committed(tp) or 0
            lag.setdefault(tp.topic, {})[str(tp.partition)] = max(0, ends[tp] - committed)
        return lag
    finally:
        await probe.stop()
