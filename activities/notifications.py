"""The notification activity. Retries come from the calling workflow's retry policy; the
outbox makes each event's delivery happen once however often the activity runs."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from loyalty import notifications
from loyalty.core import db
from loyalty.notifications import Notification

# Answers that mean "this request will never succeed": retrying them would only spin.
_PERMANENT = {400, 401, 403, 404, 410, 413, 422}


class NotificationActivities:
    def __init__(
        self, engine: AsyncEngine, notify_url: str | None, http: httpx.AsyncClient | None = None
    ) -> None:
        self._engine = engine
        self._url = notify_url
        self._http = http or httpx.AsyncClient(timeout=10)

    @activity.defn(name="send_notification")
    async def send(self, note: Notification) -> str:
        """Record the notification, then deliver it if a notification service is configured.
        Returns `delivered`, `already_delivered` or `queued` (outbox only)."""
        async with db.begin(self._engine) as conn:
            if await notifications.record(conn, note):
                return "already_delivered"
        if self._url is None:
            return "queued"
        error: str | None = None
        try:
            response = await self._http.post(
                self._url, json=note.body(), headers={"Idempotency-Key": note.idempotency_key}
            )
            if response.status_code >= 300:
                error = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            response = None
            error = f"{type(exc).__name__}: {exc}"
        async with db.begin(self._engine) as conn:
            await notifications.mark_attempt(conn, note.idempotency_key, error=error)
        if error is None:
            return "delivered"
        if response is not None and response.status_code in _PERMANENT:
            raise ApplicationError(
                f"notification service refused {note.kind}: {error}",
                type="notification_refused",
                non_retryable=True,
            )
        raise RuntimeError(f"notification delivery failed: {error}")
