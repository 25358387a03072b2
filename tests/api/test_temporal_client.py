"""app.state.temporal: connected on first use; the wallet API never needs it."""

from __future__ import annotations

import pytest

from api.app import create_app
from api.errors import ServiceUnavailable
from loyalty.core.settings import Settings
from tests.api.conftest import serve


async def test_connects_on_first_use(database_url, engine, temporal_address):
    settings = Settings(
        environment="test", database_url=database_url, temporal_address=temporal_address
    )
    app = create_app(settings)
    async with serve(app) as client:
        assert (await client.get("/health")).json()["temporal"] == "not_connected"
        temporal = await app.state.temporal.get()
        assert await app.state.temporal.get() is temporal
        assert temporal.namespace == "default"
        assert (await client.get("/health")).json()["temporal"] == "connected"


async def test_unreachable_temporal_is_service_unavailable(database_url, engine):
    settings = Settings(
        environment="test", database_url=database_url, temporal_address="127.0.0.1:9"
    )
    app = create_app(settings)
    async with serve(app) as client:
        with pytest.raises(ServiceUnavailable, match="Temporal is not reachable"):
            await app.state.temporal.get()
        assert (await client.get("/health")).status_code == 200
