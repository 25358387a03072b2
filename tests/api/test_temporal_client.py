"""app.state.temporal: connected on first use; the wallet API never needs it."""

from __future__ import annotations

import pytest

from api.app import create_app
from api.errors import ServiceUnavailable
from tests.harness.api import in_process


async def test_connects_on_first_use(settings):
    app = create_app(settings)
    async with in_process(app) as client:
        assert (await client.get("/health")).json()["temporal"] == "not_connected"
        temporal = await app.state.temporal.get()
        assert await app.state.temporal.get() is temporal
        assert temporal.namespace == "default"
        assert (await client.get("/health")).json()["temporal"] == "connected"


async def test_unreachable_temporal_is_service_unavailable(settings):
    app = create_app(settings.model_copy(update={"temporal_address": "127.0.0.1:9"}))
    async with in_process(app) as client:
        with pytest.raises(ServiceUnavailable, match="Temporal is not reachable"):
            await app.state.temporal.get()
        assert (await client.get("/health")).status_code == 200
