"""Delivery to the notification service (NOTIFY_URL): a POST with the key in an
`Idempotency-Key` header, recorded on the outbox row. A notification already delivered is never
sent again, so a retried activity or a replayed workflow sends each event once; without
NOTIFY_URL the row stays in the outbox for a relay (or an operator) to pick up."""

from __future__ import annotations

from typing import Literal

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from loyalty.core import db
from loyalty.core.errors import LoyaltyError
from loyalty.notifications import outbox
from loyalty.notifications.models import Notification

# Answers that mean "this request will never succeed": retrying them would only spin.
PERMANENT_STATUSES = frozenset({400, 401, 403, 404, 410, 413, 422})

Delivered = Literal["delivered", "already_delivered", "queued"]


class NotificationRefused(LoyaltyError):
    """The notification service refused the notification for good (a 4xx that means so)."""

    code = "notification_refused"
    status_code = 502


class DeliveryFailed(Exception):
    """The notification service could not be reached or failed (5xx): worth another try."""


async def deliver(
    engine: AsyncEngine, http: httpx.AsyncClient, url: str | None, note: Notification
) -> Delivered:
    """Record the notification, then send it if a service is configured. Raises
    NotificationRefused (final) or DeliveryFailed (retry later)."""
    async with db.transaction(engine) as conn:
        if await outbox.record(conn, note):
            return "already_delivered"
    if url is None:
        return "queued"
    error: str | None = None
    status: int | None = None
    try:
        response = await http.post(
            url, json=note.body(), headers={"Idempotency-Key": note.idempotency_key}
        )
        status = response.status_code
        if status >= 300:
            error = f"HTTP {status}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    refused = status in PERMANENT_STATUSES
    async with db.transaction(engine) as conn:
        await outbox.mark_attempt(conn, note.idempotency_key, error=error, park=refused)
    if error is None:
        return "delivered"
    if refused:
        raise NotificationRefused(f"notification service refused {note.kind}: {error}")
    raise DeliveryFailed(f"notification delivery failed: {error}")
