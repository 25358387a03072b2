"""The outbox relay: `python -m streams.relay` (the run command starts one; more may run side by
side). It delivers every row of `notification_outbox`, each written in the transaction of the
change it announces:

- `notify` rows to the notification service (NOTIFY_URL; without it they wait), a POST with the
  row's key as Idempotency-Key, as the send_notification activity did;
- `event` rows to the events topic (KAFKA_EVENTS_TOPIC), keyed by wallet, as the JSON events of
  docs/events/.

At least once, in order per wallet and channel (loyalty.notifications.relay), with backoff. A
receiver's refusal for good (a 4xx other than 408 and 429, a message Kafka will never take) is
recorded on the row and the row parked for an operator (GET /outbox, then
POST /outbox/{id}/retry); the business workflow that wrote it never hears of it.

With OUTBOX_RELAY=true the send_notification activity only records the notification, so this
relay is the one sender."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from sqlalchemy.ext.asyncio import AsyncEngine

from loyalty.core import db
from loyalty.core.settings import Settings
from loyalty.notifications import relay as store
from streams import kafka

log = logging.getLogger("streams.relay")

BATCH = 200  # rows claimed per pass (at most one per wallet)
POLL_SECONDS = 0.05  # idle wait between passes: bounds the commit-to-publish latency
HTTP_CONCURRENCY = 32
BACKLOG_LOG_SECONDS = 30.0

# A retry could pass: the receiver timed out or was rate limiting.
_RETRYABLE_4XX = frozenset({408, 425, 429})

Outcome = tuple[str, str] | None  # None: delivered; ("retry" | "park", error)
Deliver = Callable[[list[store.OutboxRow]], Awaitable[list[Outcome]]]


@dataclass
class RelayCounts:
    delivered: int = 0
    retried: int = 0
    parked: int = 0


class OutboxRelay:
    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        http: httpx.AsyncClient | None = None,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.http = http or httpx.AsyncClient(timeout=10)
        self.poll_seconds = poll_seconds
        self.counts = {"notify": RelayCounts(), "event": RelayCounts()}
        self._stopping = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        await kafka.ensure_topics(self.settings)
        self._producer = kafka.producer(self.settings, linger_ms=2)
        await self._producer.start()
        loops = [self._loop("event", self._publish)]
        if self.settings.notify_url:
            loops.append(self._loop("notify", self._notify))
        else:
            log.warning("NOTIFY_URL is not set: notifications stay in the outbox")
        log.info(
            "relaying the outbox to %s%s",
            self.settings.kafka_events_topic,
            f" and {self.settings.notify_url}" if self.settings.notify_url else "",
        )
        try:
            async with asyncio.TaskGroup() as tasks:
                for loop in loops:
                    tasks.create_task(loop)
                tasks.create_task(self._log_backlog())
        finally:
            await self._producer.stop()
            self._producer = None

    async def _loop(self, channel: store.Channel, deliver: Deliver) -> None:
        delay = 0.1
        while not self._stopping.is_set():
            try:
                handled = await self.pass_once(channel, deliver)
                delay = 0.1
            except Exception as exc:  # PostgreSQL unreachable, say: the rows wait
                log.warning("%s relay pass failed, again in %.1fs: %s", channel, delay, exc)
                handled = 0
                await self._sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if handled < BATCH:
                await self._sleep(self.poll_seconds)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def pass_once(self, channel: store.Channel, deliver: Deliver) -> int:
        """Claim the due rows, deliver them, record what happened; the rows handled."""
        async with db.transaction(self.engine) as conn:
            rows = await store.claim_due(conn, channel, BATCH)
            if not rows:
                return 0
            outcomes = await deliver(rows)
            counts = self.counts[channel]
            delivered = [r.notification_id for r, o in zip(rows, outcomes, strict=True) if not o]
            await store.mark_delivered(conn, delivered)
            counts.delivered += len(delivered)
            for row, outcome in zip(rows, outcomes, strict=True):
                if outcome is None:
                    continue
                what, error = outcome
                if what == "park":
                    counts.parked += 1
                    await store.park(conn, row.notification_id, error)
                    log.warning("parked %s row %s (%s): %s", channel, row.key, row.kind, error)
                else:
                    counts.retried += 1
                    await store.retry_later(conn, row.notification_id, error)
        return len(rows)

    async def _publish(self, rows: list[store.OutboxRow]) -> list[Outcome]:
        assert self._producer is not None
        topic = self.settings.kafka_events_topic
        sent: list[asyncio.Future[object] | BaseException] = []
        for row in rows:
            message = store.event_message(row)
            try:
                sent.append(
                    await self._producer.send(
                        topic,
                        value=json.dumps(message, separators=(",", ":")).encode(),
                        key=row.user_id.encode(),
                        headers=[("type", row.kind.encode()), ("id", message["id"].encode())],
                    )
                )
            except KafkaError as exc:
                sent.append(exc)
        outcomes: list[Outcome] = []
        for future in sent:
            try:
                if isinstance(future, BaseException):
                    raise future
                await future
                outcomes.append(None)
            except MessageSizeTooLargeError as exc:
                outcomes.append(("park", f"{type(exc).__name__}: {exc}"))
            except KafkaError as exc:
                outcomes.append(("retry", f"{type(exc).__name__}: {exc}"))
        return outcomes

    async def _notify(self, rows: list[store.OutboxRow]) -> list[Outcome]:
        url = self.settings.notify_url
        assert url is not None
        gate = asyncio.Semaphore(HTTP_CONCURRENCY)

        async def post(row: store.OutboxRow) -> Outcome:
            async with gate:
                try:
                    response = await self.http.post(
                        url,
                        json=store.notification_message(row),
                        headers={"Idempotency-Key": row.key},
                    )
                except httpx.HTTPError as exc:
                    return ("retry", f"{type(exc).__name__}: {exc}")
            status = response.status_code
            if status < 300:
                return None
            error = f"HTTP {status}: {response.text[:500]}"
            if 400 <= status < 500 and status not in _RETRYABLE_4XX:
                return ("park", error)
            return ("retry", error)

        return list(await asyncio.gather(*(post(row) for row in rows)))

    async def _log_backlog(self) -> None:
        """The backlog and parked rows in the log, for operators without the admin API."""
        next_at = time.monotonic() + BACKLOG_LOG_SECONDS
        while not self._stopping.is_set():
            await self._sleep(max(0.0, next_at - time.monotonic()))
            if self._stopping.is_set():
                return
            next_at = time.monotonic() + BACKLOG_LOG_SECONDS
            try:
                async with self.engine.connect() as conn:
                    backlog = await store.backlog(conn)
            except Exception as exc:
                log.warning("outbox backlog unknown: %s", exc)
                continue
            level = logging.WARNING if any(c["parked"] for c in backlog.values()) else logging.INFO
            log.log(level, "outbox backlog %s; relayed %s", backlog, self.counts)


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = Settings()
    if not settings.database_url:
        raise SystemExit("DATABASE_URL is not set (the run command sets it)")
    engine = db.make_engine(settings.database_url, pool_size=4)
    relay = OutboxRelay(settings, engine)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, relay.stop)
    try:
        await relay.run()
    finally:
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
