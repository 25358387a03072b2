"""The notification outbox: every notification is first a row of `notification_outbox`, written
in the transaction of the business change it announces (ON CONFLICT DO NOTHING on its key), so
it exists exactly when the change does. Delivery (loyalty.notifications.delivery) marks it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.notifications.models import Notification

_DELIVERED = text(
    "SELECT delivered_at IS NOT NULL FROM notification_outbox WHERE idempotency_key = :k"
)
_MARK = text(
    "UPDATE notification_outbox SET attempts = attempts + 1, last_error = CAST(:e AS text), "
    "delivered_at = CASE WHEN CAST(:e AS text) IS NULL THEN now() ELSE delivered_at END, "
    "parked_at = CASE WHEN CAST(:park AS boolean) THEN now() ELSE parked_at END "
    "WHERE idempotency_key = :k"
)


def values(notes: Sequence[Notification], prefix: str = "n") -> tuple[str, dict[str, Any]]:
    """VALUES rows and their parameters for `notes`, for an INSERT into the outbox that is part
    of a larger statement (an earn's bookkeeping writes its notification in the same one)."""
    rows: list[str] = []
    params: dict[str, Any] = {}
    for i, note in enumerate(notes):
        rows.append(
            f"(:{prefix}k{i}, :{prefix}kind{i}, :{prefix}u{i}, CAST(:{prefix}p{i} AS jsonb))"
        )
        params |= {
            f"{prefix}k{i}": note.idempotency_key,
            f"{prefix}kind{i}": note.kind.value,
            f"{prefix}u{i}": note.user_id,
            f"{prefix}p{i}": json.dumps(note.payload, default=str),
        }
    return ", ".join(rows), params


def insert_sql(rows: str) -> str:
    return (
        "INSERT INTO notification_outbox (idempotency_key, kind, user_id, payload) "
        f"VALUES {rows} ON CONFLICT (idempotency_key) DO NOTHING"
    )


async def enqueue(conn: AsyncConnection, notes: Sequence[Notification]) -> None:
    """Put the notifications in the outbox in one statement; ones already there stay as they
    are (delivered or not)."""
    if not notes:
        return
    rows, params = values(notes)
    await conn.execute(text(insert_sql(rows)), params)


async def record(conn: AsyncConnection, note: Notification) -> bool:
    """Put the notification in the outbox; True if it is already delivered."""
    await enqueue(conn, [note])
    return bool((await conn.execute(_DELIVERED, {"k": note.idempotency_key})).scalar_one())


async def mark_attempt(
    conn: AsyncConnection, key: str, *, error: str | None, park: bool = False
) -> None:
    """Record a delivery attempt: delivered when `error` is None; `park`: refused for good, the
    row waits for an operator (loyalty.notifications.relay)."""
    await conn.execute(_MARK, {"k": key, "e": error, "park": park})
