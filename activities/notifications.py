"""The notification activity. Retries come from the calling workflow's retry policy; the outbox
makes each event's delivery happen once however often the activity runs."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.support import refusals_final
from loyalty.notifications import delivery
from loyalty.notifications.models import Notification


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
        async with refusals_final():
            return await delivery.deliver(self._engine, self._http, self._url, note)
