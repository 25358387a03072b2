"""Gauges read from PostgreSQL when Prometheus scrapes: holds open and their points, and the
notification outbox's backlog. State, not events: any process can read it, and it stays right
across restarts. The API registers this collector (one reader of the shared state is enough;
the worker does not).

prometheus-client calls `collect` synchronously, from the thread that renders the scrape
(api.telemetry renders in a worker thread); the query runs on the process's event loop, where
its async engine lives, and the scrape waits for it (bounded: a slow database yields no
gauges, never a hung scrape)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("loyalty.observability")

# An undelivered notification that failed this many attempts counts as parked: delivery keeps
# retrying it with backoff, but it needs an operator (the receiver refuses it, or is gone).
PARKED_AFTER_ATTEMPTS = 5
SCRAPE_TIMEOUT_SECONDS = 3

_STATE = text(
    "SELECT (SELECT count(*) FROM holds WHERE status = 'open') AS holds_open, "
    "(SELECT coalesce(sum(amount), 0) FROM holds WHERE status = 'open') AS points_held, "
    "(SELECT count(*) FROM notification_outbox WHERE delivered_at IS NULL "
    " AND attempts < :parked) AS outbox_waiting, "
    "(SELECT count(*) FROM notification_outbox WHERE delivered_at IS NULL "
    " AND attempts >= :parked) AS outbox_parked"
)


class StateCollector(Collector):
    def __init__(self, engine: AsyncEngine, loop: asyncio.AbstractEventLoop) -> None:
        self._engine = engine
        self._loop = loop

    async def _read(self) -> dict[str, int]:
        async with self._engine.connect() as conn:
            row = (await conn.execute(_STATE, {"parked": PARKED_AFTER_ATTEMPTS})).mappings().one()
        return {key: int(value) for key, value in row.items()}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        future = asyncio.run_coroutine_threadsafe(self._read(), self._loop)
        try:
            state = future.result(timeout=SCRAPE_TIMEOUT_SECONDS)
        except Exception as exc:  # the database is down or slow: no gauges this scrape
            future.cancel()
            log.warning("metrics: cannot read the ledger state: %s", type(exc).__name__)
            return
        yield GaugeMetricFamily(
            "loyalty_holds_open",
            "Holds open now (points reserved by checkouts)",
            value=state["holds_open"],
        )
        yield GaugeMetricFamily(
            "loyalty_holds_open_points",
            "Points reserved by the holds open now",
            value=state["points_held"],
        )
        outbox = GaugeMetricFamily(
            "loyalty_outbox_rows",
            f"Undelivered notifications: waiting, or parked after {PARKED_AFTER_ATTEMPTS} "
            "failed attempts",
            labels=["state"],
        )
        outbox.add_metric(["waiting"], state["outbox_waiting"])
        outbox.add_metric(["parked"], state["outbox_parked"])
        yield outbox

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # not known without a query; registration must not touch the database
