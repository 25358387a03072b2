"""The API's Temporal client, connected on first use so the wallet API runs without Temporal.

`app.state.temporal` is a LazyTemporalClient; routers that start or signal workflows depend on
`api.deps.TemporalClient`, which answers 503 `service_unavailable` when Temporal is down. Its
calls are retried on Temporal's passing refusals (api.temporal.transient)."""

from __future__ import annotations

import asyncio

from temporalio.client import Client

from api.errors import ServiceUnavailable
from api.temporal.transient import TransientRetries
from loyalty.core.settings import Settings
from loyalty.core.temporal import connect, data_converter
from loyalty.observability import tracing


class LazyTemporalClient:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        # Made now, not at the first connect: unusable payload keys stop the process at start
        # instead of answering every call with a 503 that no retry can change.
        self.converter = data_converter(settings)
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._client is not None

    async def get(self) -> Client:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                try:
                    # Tracing outermost: its span covers the retries of a passing refusal.
                    interceptors = [*tracing.temporal_interceptors(), TransientRetries()]
                    self._client = await connect(
                        self._settings, interceptors=interceptors, converter=self.converter
                    )
                except Exception as exc:  # any connect failure means "not reachable now"
                    raise ServiceUnavailable("Temporal is not reachable") from exc
            return self._client
