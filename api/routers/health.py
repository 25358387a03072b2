"""Liveness and dependency reachability, without auth.

- /health (documented): whether the database answers, and whether the API holds a Temporal
  client yet.
- /health/live: the process answers (a liveness probe restarts it otherwise). No dependency is
  checked: a database outage must not restart every API process.
- /health/ready: PostgreSQL and Temporal reachable and the schema at the migrations' head; 503
  otherwise, naming what is not (a readiness probe takes it out of the load balancer, and
  docker-compose.yml waits for it). The probes are for orchestrators, not API clients: they are
  left out of the OpenAPI document."""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Literal

from alembic.config import Config
from alembic.script import ScriptDirectory
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import text

from loyalty.core.settings import PROJECT_ROOT


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    database: Literal["ok", "unreachable"]
    temporal: Literal["connected", "not_connected"] = Field(
        description="whether the API holds a Temporal client yet (it connects on first use)"
    )


router = APIRouter(tags=["health"])

DB_TIMEOUT_SECONDS = 3


async def _database_ok(request: Request) -> bool:
    try:
        async with asyncio.timeout(DB_TIMEOUT_SECONDS):
            async with request.app.state.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception:  # any failure to reach the database is "unreachable"
        return False
    return True


@router.get("/health", response_model=HealthOut, responses={503: {"model": HealthOut}})
async def health(request: Request, response: Response) -> HealthOut:
    """Service health: 200 when the database answers, 503 otherwise."""
    database_ok = await _database_ok(request)
    if not database_ok:
        response.status_code = 503
    return HealthOut(
        status="ok" if database_ok else "degraded",
        database="ok" if database_ok else "unreachable",
        temporal="connected" if request.app.state.temporal.connected else "not_connected",
    )


TEMPORAL_TIMEOUT_SECONDS = 3
_REVISION = text("SELECT version_num FROM alembic_version")


@functools.cache
def migrations_head() -> str | None:
    """The newest migration this code ships (read once from migrations/)."""
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    return ScriptDirectory.from_config(config).get_current_head()


@router.get("/health/live", include_in_schema=False)
async def live() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


async def _schema_state(request: Request) -> str:
    try:
        async with asyncio.timeout(DB_TIMEOUT_SECONDS):
            async with request.app.state.engine.connect() as conn:
                revision = (await conn.execute(_REVISION)).scalar_one_or_none()
    except Exception:  # any failure to reach the database is "unreachable"
        return "unreachable"
    head = await asyncio.to_thread(migrations_head)
    return "ok" if revision == head else f"at {revision}, head is {head}"


async def _temporal_state(request: Request) -> str:
    try:
        async with asyncio.timeout(TEMPORAL_TIMEOUT_SECONDS):
            client = await request.app.state.temporal.get()
            await client.service_client.check_health()
    except Exception:  # not connected, or not answering
        return "unreachable"
    return "ok"


@router.get("/health/ready", include_in_schema=False)
async def ready(request: Request, response: Response) -> dict[str, Any]:
    """200 when PostgreSQL and Temporal answer and the migrations are at head, else 503."""
    database, temporal = await asyncio.gather(_schema_state(request), _temporal_state(request))
    ok = database == "ok" and temporal == "ok"
    if not ok:
        response.status_code = 503
    return {"status": "ok" if ok else "unavailable", "database": database, "temporal": temporal}
