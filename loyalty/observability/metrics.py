"""The service's own Prometheus metrics (prometheus-client, default registry), and counting them
exactly once.

Business counters move only when what they count happened for good: a ledger row newly written
(an idempotent replay writes none and counts nothing) whose transaction committed. A posting
made inside a transaction is counted when that transaction commits (`on_commit`); one made in
autocommit is committed by its own statement and counted at once. Each process counts its own
work (the API its earns and adjustments, the worker its sagas); Prometheus sums them.

What is state rather than events (holds open, the outbox backlog) is read from PostgreSQL at
scrape time (loyalty.observability.state)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Histogram
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.pool import Pool

HTTP_REQUESTS = Counter(
    "loyalty_http_requests",
    "HTTP requests answered, by route template, method and status code",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "loyalty_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template and method",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
POSTINGS = Counter(
    "loyalty_ledger_postings",
    "Ledger rows written (replays excluded), by posting type",
    ["type"],
)
POINTS = Counter(
    "loyalty_ledger_points",
    "Points moved by new ledger rows, by posting type and direction (credit or debit of the "
    "balance; hold for holds and releases, which move held points only)",
    ["type", "direction"],
)
CHECKOUTS = Counter(
    "loyalty_checkouts",
    "Checkouts whose points reached a final outcome: captured, released, or refused at the hold",
    ["outcome"],
)
HOLD_LATENCY = Histogram(
    "loyalty_hold_duration_seconds",
    "Time to place (or refuse) a checkout's hold, in the hold activity",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
TIER_CHANGES = Counter(
    "loyalty_tier_changes",
    "Wallets moved to another tier, by direction (upgrade or downgrade) and reason",
    ["direction", "reason"],
)
RECONCILIATION_FINDINGS = Counter(
    "loyalty_reconciliation_findings",
    "Reconciliation findings newly recorded (a rerun batch records none), by kind",
    ["kind"],
)

# Series that exist from the start (at 0), so a dashboard's rate() shows 0 rather than nothing.
for _outcome in ("captured", "released", "refused"):
    CHECKOUTS.labels(_outcome)
for _direction, _reason in (
    ("upgrade", "realtime"),
    ("upgrade", "evaluation"),
    ("downgrade", "evaluation"),
):
    TIER_CHANGES.labels(_direction, _reason)

_PENDING = "loyalty.metrics.pending"  # key in the DBAPI connection's info dict


def on_commit(conn: AsyncConnection, action: Callable[[], None]) -> None:
    """Run `action` once the work on `conn` is committed: now in autocommit, else when its
    transaction commits (never if it rolls back)."""
    sync = conn.sync_connection
    if sync is None or _autocommits(sync):
        action()
        return
    sync.info.setdefault(_PENDING, []).append(action)


def _autocommits(sync: Connection) -> bool:
    return sync.get_execution_options().get("isolation_level") == "AUTOCOMMIT"


@event.listens_for(Engine, "commit")
def _run_pending(conn: Connection) -> None:
    for action in conn.info.pop(_PENDING, ()):
        action()


@event.listens_for(Engine, "rollback")
def _drop_pending(conn: Connection) -> None:
    conn.info.pop(_PENDING, None)


@event.listens_for(Pool, "checkin")
def _drop_on_checkin(dbapi_connection: Any, record: Any) -> None:
    # A connection returned without commit or rollback (invalidated) keeps nothing for its
    # next user.
    if record is not None:
        record.info.pop(_PENDING, None)


def count_posting(conn: AsyncConnection, tx_type: str, amount: int, held_delta: int) -> None:
    """A new ledger row of `tx_type` (call only when it is not a replay)."""
    if amount > 0:
        direction, points = "credit", amount
    elif amount < 0:
        direction, points = "debit", -amount
    elif held_delta:
        direction, points = "hold", abs(held_delta)
    else:  # a clawback of 0 points: a refund taking back tier credit only
        direction, points = "debit", 0

    def count() -> None:
        POSTINGS.labels(tx_type).inc()
        POINTS.labels(tx_type, direction).inc(points)

    on_commit(conn, count)


def count_checkout(conn: AsyncConnection | None, outcome: str) -> None:
    """A checkout's final outcome (on commit of `conn`, or now without one)."""
    if conn is None:
        CHECKOUTS.labels(outcome).inc()
    else:
        on_commit(conn, CHECKOUTS.labels(outcome).inc)


def count_findings(conn: AsyncConnection, kinds: list[str]) -> None:
    """Newly recorded reconciliation findings, one kind per row (on commit of `conn`)."""

    def count() -> None:
        for kind in kinds:
            RECONCILIATION_FINDINGS.labels(kind).inc()

    if kinds:
        on_commit(conn, count)


def count_tier_changes(conn: AsyncConnection, direction: str, reason: str, n: int = 1) -> None:
    if n > 0:
        on_commit(conn, lambda: TIER_CHANGES.labels(direction, reason).inc(n))
