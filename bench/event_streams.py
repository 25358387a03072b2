"""Booking events through Kafka against the HTTP intake, and the outbox relay's latency.

    .venv/bin/python bench/event_streams.py [--events 1000] [--clients 32] [--relay-rate 200]
                                      [--relay-seconds 10]

One run, one stack of its own (embedded PostgreSQL, Temporal dev server, Tansu, the API, a
worker, a consumer and a relay, each a process):

1. HTTP: `--events` payment_succeeded events POSTed to /booking-events by `--clients`
   keep-alive connections.
2. Kafka: as many other events produced to the payment topic first, then one consumer process
   started on the backlog.
   Both rates are events accepted per second, from the intake's own record (booking_events
   received_at: the first to the last claim), so the consumer's group join is not counted.
3. Relay: POST /wallets/{userId}/earn at `--relay-rate` a second for `--relay-seconds`; each
   writes a notification and its event in the posting's transaction. A reader of the events
   topic takes each event's latency as its arrival minus its `time` (the transaction's start,
   just before its commit): commit to publish, plus the reader's fetch (an upper bound).

Target (the issue): Kafka at least 90% of HTTP's rate; the relay's p99 under 1 s."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import text

import devstack
from bench import kit
from loyalty.core.db import make_engine
from loyalty.core.settings import Settings


def _event(tag: str, i: int) -> dict[str, object]:
    booking = f"bk-{tag}-{i}"
    return {
        "event": {
            "event_id": f"ev-{tag}-{i}",
            "type": "payment_succeeded",
            "booking_id": booking,
            "user_id": f"user-{tag}-{i % 500}",
            "payment_id": f"pi-{booking}",
            "amount_paid": 250_000,
            "currency": "VND",
        }
    }


async def _claimed_rate(settings: Settings, tag: str, n: int, within: float) -> float:
    """Events per second between the first and the last claim of the phase's `n` events."""
    engine = make_engine(settings.database_url or "", pool_size=1)
    query = text(
        "SELECT count(*), extract(epoch FROM max(received_at) - min(received_at)) "
        "FROM booking_events WHERE event_id LIKE :p"
    )
    try:
        deadline = time.monotonic() + within
        while True:
            async with engine.connect() as conn:
                count, span = (await conn.execute(query, {"p": f"ev-{tag}-%"})).one()
            if count >= n:
                return n / max(float(span or 0), 1e-3)
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {count} of {n} events of {tag} accepted")
            await asyncio.sleep(0.2)
    finally:
        await engine.dispose()


async def http_phase(api: str, token: str, settings: Settings, n: int, clients: int) -> float:
    tag = f"h{uuid.uuid4().hex[:6]}"
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def client() -> None:
        conn = kit.RawHttpConnection(api, {"Authorization": f"Bearer {token}"})
        while not queue.empty():
            i = queue.get_nowait()
            status, body = await conn.post("/booking-events", json.dumps(_event(tag, i)).encode())
            if status != 202:
                raise RuntimeError(f"HTTP {status}: {body[:300]!r}")

    await asyncio.gather(*(client() for _ in range(clients)))
    return await _claimed_rate(settings, tag, n, within=120)


async def kafka_phase(stack: kit.Stack, env: dict[str, str], settings: Settings, n: int) -> float:
    tag = f"k{uuid.uuid4().hex[:6]}"
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(
                settings.kafka_payment_topic,
                json.dumps(body).encode(),
                key=str(body["event"]["booking_id"]).encode(),  # type: ignore[index]
            )
            for body in (_event(tag, i) for i in range(n))
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    stack.start("consumer", [sys.executable, "-m", "streams.consumer"], env)
    return await _claimed_rate(settings, tag, n, within=300)


async def relay_phase(
    api: str, token: str, settings: Settings, rate: int, seconds: float
) -> list[float]:
    reader = AIOKafkaConsumer(
        settings.kafka_events_topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="latest",
        fetch_max_wait_ms=50,
    )
    await reader.start()
    tag = uuid.uuid4().hex[:6]
    total = int(rate * seconds)
    latencies: list[float] = []

    async def read() -> None:
        while len(latencies) < total:
            for batch in (await reader.getmany(timeout_ms=200)).values():
                now = time.time()
                for record in batch:
                    event = json.loads(record.value)
                    if event["wallet"].startswith(f"relay-{tag}-"):
                        latencies.append(now - datetime.fromisoformat(event["time"]).timestamp())

    try:
        await reader.seek_to_end()
        reading = asyncio.create_task(read())
        # Open loop: requests leave on schedule, each on a connection of the pool that is free.
        pool: asyncio.Queue[kit.RawHttpConnection] = asyncio.Queue()
        for _ in range(64):
            pool.put_nowait(kit.RawHttpConnection(api, {"Authorization": f"Bearer {token}"}))

        async def earn(i: int) -> None:
            conn = await pool.get()
            try:
                body = {"booking_id": f"bk-{tag}-{i}", "amount_paid": 100_000, "currency": "VND"}
                status, answer = await conn.post(
                    f"/wallets/relay-{tag}-{i}/earn", json.dumps(body).encode()
                )
                if status not in (200, 201):
                    raise RuntimeError(f"HTTP {status}: {answer[:300]!r}")
            finally:
                pool.put_nowait(conn)

        start = time.monotonic()
        pending: set[asyncio.Task[None]] = set()
        for i in range(total):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(earn(i))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
        await asyncio.wait_for(reading, 60)
    finally:
        await reader.stop()
    return latencies


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def start_stack(stack: kit.Stack) -> tuple[Settings, dict[str, str], str, str]:
    """Everything but the consumer (the Kafka phase starts it on its backlog)."""
    url = stack.postgres()
    address = stack.temporal()
    port = devstack.free_port()
    stack.own("kafka", devstack.start_kafka(port=port, log_file=stack.root / "kafka.log"))
    settings, env = kit.settings_and_env(
        database_url=url,
        temporal_address=address,
        kafka_bootstrap_servers=f"127.0.0.1:{port}",
        stripe_api_key="sk_test_bench",
        stripe_api_base="http://127.0.0.1:9",
        outbox_relay=True,
    )
    env["WORKFLOW_SANDBOX"] = "false"
    stack.worker("worker", ["worker.py"], env)
    api = stack.api(env)
    stack.start("relay", [sys.executable, "-m", "streams.relay"], env)
    return settings, env, api, kit.service_token(settings)


async def measure(
    a: argparse.Namespace, stack: kit.Stack, started: tuple[Settings, dict[str, str], str, str]
) -> int:
    settings, env, api, token = started
    kit.header(
        "streams",
        f"{a.events} events per intake phase, {a.clients} HTTP clients",
        f"relay at {a.relay_rate}/s for {a.relay_seconds}s",
    )
    http = await http_phase(api, token, settings, a.events, a.clients)
    via_kafka = await kafka_phase(stack, env, settings, a.events)
    latencies = await relay_phase(api, token, settings, a.relay_rate, a.relay_seconds)
    kit.table(
        ["phase", "events/s", "vs HTTP"],
        [
            ["HTTP POST /booking-events", f"{http:.0f}", "100%"],
            ["Kafka consumer (1 process)", f"{via_kafka:.0f}", f"{via_kafka / http:.0%}"],
        ],
    )
    print(
        f"relay commit-to-publish at {a.relay_rate}/s: {len(latencies)} events, "
        f"p50 {_pct(latencies, 50) * 1000:.0f} ms, p99 {_pct(latencies, 99) * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms",
        flush=True,
    )
    return 0


def main() -> int:
    p = kit.parser(__doc__)
    p.add_argument("--events", type=int, default=1000)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--relay-rate", type=int, default=200)
    p.add_argument("--relay-seconds", type=float, default=10)
    args = p.parse_args()
    with kit.workdir("streams", keep=args.keep) as root, kit.Stack(root) as stack:
        return asyncio.run(measure(args, stack, start_stack(stack)))


if __name__ == "__main__":
    kit.finish(main())
