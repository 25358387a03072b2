"""Tiers: the ladder for everyone signed in; create, update and reorder for admins."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path

from api.auth import SCOPE_ADMIN, SCOPE_CUSTOMER, SCOPE_SERVICE, Principal, require_scope
from api.deps import Admin, AppSettings, Connection
from api.errors import error_responses
from loyalty.tiers import admin as tier_admin
from loyalty.tiers.rules import next_evaluation_at
from loyalty.tiers.schemas import TierIn, TierLadderOut, TierOrderIn, TierOut, TierPatch

router = APIRouter(prefix="/tiers", tags=["tiers"])

Reader = Annotated[Principal, Depends(require_scope(SCOPE_CUSTOMER, SCOPE_SERVICE, SCOPE_ADMIN))]
TierCodePath = Annotated[str, Path(alias="code", min_length=1, max_length=32)]


@router.get("", response_model=TierLadderOut, responses=error_responses())
async def list_tiers(principal: Reader, conn: Connection, settings: AppSettings) -> TierLadderOut:
    """The tier ladder, lowest first, and when tiers are next evaluated."""
    return TierLadderOut(
        tiers=await tier_admin.list_tiers(conn),
        next_evaluation_at=next_evaluation_at(
            datetime.now(UTC), settings.tier_evaluation_time, settings.tier_evaluation_timezone
        ),
    )


@router.post("", response_model=TierOut, status_code=201, responses=error_responses(409))
async def create_tier(principal: Admin, conn: Connection, body: TierIn) -> TierOut:
    """Add a tier; the ladder must stay ordered (each threshold above the one below)."""
    return await tier_admin.create_tier(conn, body)


# Before /{code}, which also matches `order`: a method neither route serves (OPTIONS, GET) on
# /tiers/order is then answered by this route, a 405 allowing PUT, not one allowing PATCH.
@router.put("/order", response_model=list[TierOut], responses=error_responses())
async def reorder_tiers(principal: Admin, conn: Connection, body: TierOrderIn) -> list[TierOut]:
    """Set the ladder's order (every tier code once, lowest first); ranks become 1..n."""
    return await tier_admin.reorder_tiers(conn, body.codes)


@router.patch("/{code}", response_model=TierOut, responses=error_responses(404))
async def update_tier(
    code: TierCodePath, principal: Admin, conn: Connection, body: TierPatch
) -> TierOut:
    """Change a tier's name, rank, threshold, basis, multiplier, caps or benefits."""
    return await tier_admin.update_tier(conn, code, body)
