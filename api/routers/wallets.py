"""Wallets: balance and tier progress, history, admin adjustments, earn on payment."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.deps import (
    REPLAY_HEADER,
    Admin,
    AdminOrService,
    AppSettings,
    Connection,
    IdempotencyKey,
    LonePosting,
    Service,
    UserId,
    WalletReader,
)
from api.errors import error_responses
from loyalty.earning import earn_endpoint
from loyalty.earning.schemas import EarnIn, EarnOut
from loyalty.ledger.schemas import PostingOut
from loyalty.wallets import views
from loyalty.wallets.schemas import AdjustmentIn, TransactionPage, TransactionQuery, WalletOut

router = APIRouter(prefix="/wallets", tags=["wallets"])


@router.get("/{userId}", response_model=WalletOut, responses=error_responses(404))
async def get_wallet(
    user_id: UserId, principal: WalletReader, conn: Connection, settings: AppSettings
) -> WalletOut:
    """Balance, held and available points, tier and progress to the next tier."""
    return await views.wallet_view(conn, user_id, settings)


@router.put(
    "/{userId}",
    response_model=WalletOut,
    status_code=201,
    responses={200: {"model": WalletOut, "description": "already enrolled"}, **error_responses()},
)
async def enrol(
    user_id: UserId,
    principal: AdminOrService,
    conn: Connection,
    settings: AppSettings,
    response: Response,
) -> WalletOut:
    """Enrol a customer: open their wallet on the lowest tier (201), or answer the wallet they
    already have (200). A first earn opens the wallet too; an adjustment needs one."""
    wallet, opened = await views.enrol(conn, user_id, settings)
    if not opened:
        response.status_code = 200
    return wallet


@router.get(
    "/{userId}/transactions", response_model=TransactionPage, responses=error_responses(400, 404)
)
async def list_transactions(
    user_id: UserId,
    principal: WalletReader,
    conn: Connection,
    query: Annotated[TransactionQuery, Query()],
) -> TransactionPage:
    """The wallet's history, newest first, cursor-paginated, filtered by type, date, booking."""
    return await views.transaction_page(conn, user_id, query)


@router.post(
    "/{userId}/transactions",
    response_model=PostingOut,
    status_code=201,
    responses={200: {"model": PostingOut, "description": "replay"}, **error_responses(404, 409)},
)
async def adjust_wallet(
    user_id: UserId,
    principal: Admin,
    conn: LonePosting,
    body: AdjustmentIn,
    idempotency_key: IdempotencyKey,
    response: Response,
) -> PostingOut:
    """Admin adjustment: credit or debit points with a reason (never below zero available)."""
    result = await views.adjust(
        conn, user_id, body, idempotency_key=idempotency_key, actor=principal.subject
    )
    if result.replayed:
        response.status_code = 200
        response.headers[REPLAY_HEADER] = "true"
    return result


@router.post(
    "/{userId}/earn",
    response_model=EarnOut,
    status_code=201,
    responses={
        200: {"model": EarnOut, "description": "replay or zero points"},
        **error_responses(409),
    },
)
async def earn(
    user_id: UserId,
    principal: Service,
    conn: Connection,
    settings: AppSettings,
    body: EarnIn,
    response: Response,
) -> EarnOut:
    """Earn points on a paid booking (idempotent by payment id, else booking id)."""
    result = await earn_endpoint.earn_on_payment(conn, user_id, body, settings)
    if not result.posted or result.replayed:
        response.status_code = 200
    if result.replayed:
        response.headers[REPLAY_HEADER] = "true"
    return result
