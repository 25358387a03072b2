"""Customer notifications: one per business event, identified by an idempotency key.

Every notification is first recorded in `notification_outbox` (ON CONFLICT DO NOTHING on the
key). With NOTIFY_URL set it is then POSTed to the notification service with the key in an
`Idempotency-Key` header and marked delivered; a notification already marked delivered is never
sent again, so a retried activity or a replayed workflow sends each event once. Without
NOTIFY_URL the row stays in the outbox for a relay (or an operator) to pick up."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


class NotificationKind(StrEnum):
    POINTS_EARNED = "points_earned"
    POINTS_REDEEMED = "points_redeemed"
    HOLD_RELEASED = "hold_released"
    TIER_CHANGED = "tier_changed"
    VOUCHER_DELIVERED = "voucher_delivered"
    POINTS_RETURNED = "points_returned"  # points paid with, given back on a refund
    POINTS_CLAWED_BACK = "points_clawed_back"  # points earned, taken back on a refund


class Notification(BaseModel):
    idempotency_key: str = Field(min_length=1, max_length=255)
    kind: NotificationKind
    user_id: str = Field(min_length=1, max_length=128)
    payload: dict[str, Any] = Field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {
            "id": self.idempotency_key,
            "kind": self.kind.value,
            "user_id": self.user_id,
            "payload": self.payload,
        }


async def record(conn: AsyncConnection, note: Notification) -> bool:
    """Put the notification in the outbox; True if it is already delivered."""
    await conn.execute(
        text(
            "INSERT INTO notification_outbox (idempotency_key, kind, user_id, payload) "
            "VALUES (:k, :kind, :u, CAST(:payload AS jsonb)) "
            "ON CONFLICT (idempotency_key) DO NOTHING"
        ),
        {
            "k": note.idempotency_key,
            "kind": note.kind.value,
            "u": note.user_id,
            "payload": json.dumps(note.payload, default=str),
        },
    )
    delivered = (
        await conn.execute(
            text(
                "SELECT delivered_at IS NOT NULL FROM notification_outbox "
                "WHERE idempotency_key = :k"
            ),
            {"k": note.idempotency_key},
        )
    ).scalar_one()
    return bool(delivered)


_ENQUEUE_COLUMNS = "(idempotency_key, kind, user_id, payload)"


def outbox_values(notes: list[Notification], prefix: str = "n") -> tuple[str, dict[str, Any]]:
    """VALUES rows and their parameters for putting `notes` in the outbox in one statement."""
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


async def enqueue(conn: AsyncConnection, notes: list[Notification]) -> None:
    """Put the notifications in the outbox in one statement (ON CONFLICT DO NOTHING), without
    reading back whether they were delivered: for callers that leave delivery to a relay."""
    if not notes:
        return
    values, params = outbox_values(notes)
    await conn.execute(
        text(
            f"INSERT INTO notification_outbox {_ENQUEUE_COLUMNS} VALUES {values} "
            "ON CONFLICT (idempotency_key) DO NOTHING"
        ),
        params,
    )


async def mark_attempt(conn: AsyncConnection, key: str, *, error: str | None) -> None:
    await conn.execute(
        text(
            "UPDATE notification_outbox SET attempts = attempts + 1, "
            "last_error = CAST(:e AS text), "
            "delivered_at = CASE WHEN CAST(:e AS text) IS NULL THEN now() ELSE delivered_at END "
            "WHERE idempotency_key = :k"
        ),
        {"k": key, "e": error},
    )
