"""The notification activity. Retries come from the calling workflow's retry policy; the outbox
makes each event's delivery happen once however often the activity runs. With OUTBOX_RELAY on it
is given no URL and only records: the relay (streams.relay) delivers."""

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
        Returns `delivered`, `already_delivered`, `queued` (outbox only: the relay sends it) or
        `refused`: the service refused it for good, the row is parked for an operator, and the
        workflow that announced a change already made goes on (it must not fail for it)."""
        async with refusals_final():
            try:
                return await delivery.deliver(self._engine, self._http, self._url, note)
            except delivery.NotificationRefused as exc:
                activity.logger.warning("notification %s parked: %s", note.idempotency_key, exc)
                return "refused"
