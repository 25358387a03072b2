"""What the outbox relay (streams.relay) reads and writes: the rows due, claimed in order per
wallet and channel, and what became of each delivery.

Order per wallet: a row is due only when no older row of its wallet and channel is still
pending (delivered or parked ones do not hold it back), so a wallet's rows go out one after
another, and a row that waits for its backoff holds the wallet's later ones. Rows are claimed
with FOR UPDATE SKIP LOCKED in a transaction that lasts the delivery: relays running side by
side take different wallets, never the same row, and a relay that dies leaves its rows to the
next (at least once; receivers deduplicate by the key)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

Channel = Literal["notify", "event"]

# The first retry after 0.5 s, doubling, at most a minute apart.
BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 60.0

_DUE = text("""
SELECT o.notification_id, o.idempotency_key, o.kind, o.user_id, o.payload, o.attempts,
       o.created_at
FROM notification_outbox o
WHERE o.channel = :channel AND o.delivered_at IS NULL AND o.parked_at IS NULL
  AND o.next_attempt_at <= now()
  AND NOT EXISTS (
      SELECT 1 FROM notification_outbox p
      WHERE p.channel = o.channel AND p.user_id = o.user_id
        AND p.delivered_at IS NULL AND p.parked_at IS NULL
        AND p.notification_id < o.notification_id)
ORDER BY o.notification_id
LIMIT :limit
FOR UPDATE OF o SKIP LOCKED
""")
_DELIVERED = text(
    "UPDATE notification_outbox SET delivered_at = now(), attempts = attempts + 1, "
    "last_error = NULL WHERE notification_id = ANY(CAST(:ids AS bigint[]))"
)
_RETRY = text(
    "UPDATE notification_outbox SET attempts = attempts + 1, last_error = :e, "
    "next_attempt_at = now() + make_interval(secs => least(:max, :first * power(2, attempts))) "
    "WHERE notification_id = :id"
)
_PARK = text(
    "UPDATE notification_outbox SET attempts = attempts + 1, last_error = :e, parked_at = now() "
    "WHERE notification_id = :id"
)
_UNPARK = text(
    "UPDATE notification_outbox SET parked_at = NULL, next_attempt_at = now() "
    "WHERE notification_id = :id AND parked_at IS NOT NULL RETURNING notification_id"
)
_PARKED = text(
    "SELECT notification_id, channel, idempotency_key, kind, user_id, attempts, last_error, "
    "created_at, parked_at FROM notification_outbox WHERE parked_at IS NOT NULL "
    "ORDER BY notification_id DESC LIMIT :limit"
)
_PENDING = text(
    "SELECT channel, count(*) AS rows, min(created_at) AS oldest FROM notification_outbox "
    "WHERE delivered_at IS NULL AND parked_at IS NULL GROUP BY channel"
)
_PARKED_COUNT = text(
    "SELECT channel, count(*) FROM notification_outbox WHERE parked_at IS NOT NULL GROUP BY channel"
)


@dataclass(frozen=True)
class OutboxRow:
    notification_id: int
    key: str
    kind: str
    user_id: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime


async def claim_due(conn: AsyncConnection, channel: Channel, limit: int) -> list[OutboxRow]:
    """The due rows of `channel`, at most one per wallet, locked until the transaction ends."""
    rows = (await conn.execute(_DUE, {"channel": channel, "limit": limit})).all()
    return [OutboxRow(*row) for row in rows]


async def mark_delivered(conn: AsyncConnection, ids: list[int]) -> None:
    if ids:
        await conn.execute(_DELIVERED, {"ids": ids})


async def retry_later(conn: AsyncConnection, row_id: int, error: str) -> None:
    await conn.execute(
        _RETRY,
        {"id": row_id, "e": error, "first": BACKOFF_FIRST_SECONDS, "max": BACKOFF_MAX_SECONDS},
    )


async def park(conn: AsyncConnection, row_id: int, error: str) -> None:
    """A receiver refused the row for good: it waits for an operator (unpark)."""
    await conn.execute(_PARK, {"id": row_id, "e": error})


async def unpark(conn: AsyncConnection, row_id: int) -> bool:
    """Put a parked row back in line (an operator fixed the cause); False if it is not parked."""
    return (await conn.execute(_UNPARK, {"id": row_id})).first() is not None


async def parked(conn: AsyncConnection, limit: int = 100) -> list[dict[str, Any]]:
    rows = (await conn.execute(_PARKED, {"limit": limit})).mappings().all()
    return [dict(row) for row in rows]


async def backlog(conn: AsyncConnection) -> dict[str, dict[str, Any]]:
    """Per channel: rows pending, the oldest pending row's time, and rows parked."""
    out: dict[str, dict[str, Any]] = {
        c: {"pending": 0, "oldest_pending_at": None, "parked": 0} for c in ("notify", "event")
    }
    for channel, rows, oldest in (await conn.execute(_PENDING)).all():
        out[channel] |= {"pending": rows, "oldest_pending_at": oldest}
    for channel, count in (await conn.execute(_PARKED_COUNT)).all():
        out[channel]["parked"] = count
    return out


EVENT_KEY_PREFIX = "event:"  # the trigger's key of a notification's outbound event


def event_message(row: OutboxRow) -> dict[str, Any]:
    """An outbound event as published (docs/events/): the stable id is the key of the
    notification it comes with, so a redelivered event carries the same id."""
    return {
        "id": row.key.removeprefix(EVENT_KEY_PREFIX),
        "type": row.kind,
        "time": row.created_at.isoformat(),
        "wallet": row.user_id,
        "payload": row.payload,
    }


def notification_message(row: OutboxRow) -> dict[str, Any]:
    """What the notification service receives (as Notification.body(); the key also travels
    as the Idempotency-Key header)."""
    return {"id": row.key, "kind": row.kind, "user_id": row.user_id, "payload": row.payload}
