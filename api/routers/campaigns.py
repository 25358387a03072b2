"""Earn campaigns (admin): create, list, update, end. Every earn applies the campaigns running
when the booking was paid, and records them in the transaction's metadata."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response

from api.deps import Admin, AdminOrService, Connection
from api.errors import error_responses
from loyalty.earning import campaigns
from loyalty.earning.schemas import CampaignIn, CampaignOut, CampaignPatch

router = APIRouter(prefix="/campaigns", tags=["campaigns"])

CampaignId = Annotated[str, Path(alias="campaignId", min_length=1, max_length=64)]


@router.post(
    "",
    response_model=CampaignOut,
    status_code=201,
    responses={200: {"model": CampaignOut, "description": "replay"}, **error_responses(409)},
)
async def create_campaign(
    body: CampaignIn, principal: Admin, conn: Connection, response: Response
) -> CampaignOut:
    """Create a campaign; the same body again replays it, another body under its id is a 409."""
    campaign, created = await campaigns.create(conn, body, actor=principal.subject)
    if not created:
        response.status_code = 200
    return campaign


@router.get("", response_model=list[CampaignOut], responses=error_responses())
async def list_campaigns(
    conn: Connection,
    principal: AdminOrService,
    status: Annotated[Literal["scheduled", "running", "finished"] | None, Query()] = None,
) -> list[CampaignOut]:
    """Every campaign (or those scheduled, running or finished), by start."""
    return await campaigns.list_campaigns(conn, status=status)


@router.get("/{campaignId}", response_model=CampaignOut, responses=error_responses(404))
async def get_campaign(
    campaign_id: CampaignId, conn: Connection, principal: AdminOrService
) -> CampaignOut:
    """One campaign."""
    return await campaigns.get(conn, campaign_id)


@router.patch("/{campaignId}", response_model=CampaignOut, responses=error_responses(404))
async def update_campaign(
    campaign_id: CampaignId, body: CampaignPatch, principal: Admin, conn: Connection
) -> CampaignOut:
    """Change a campaign that has not finished; earns already posted keep their points."""
    return await campaigns.update(conn, campaign_id, body)


@router.post("/{campaignId}/end", response_model=CampaignOut, responses=error_responses(404))
async def end_campaign(campaign_id: CampaignId, principal: Admin, conn: Connection) -> CampaignOut:
    """End the campaign now: payments from now on no longer get it."""
    return await campaigns.end(conn, campaign_id)
