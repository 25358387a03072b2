"""Liveness and dependency reachability, without auth."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import text


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
