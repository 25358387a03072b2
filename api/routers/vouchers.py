"""Vouchers: the catalog (admin), purchase with points (customer or service), the customer's
vouchers, and marking one used (service)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from api.auth import SCOPE_ADMIN, SCOPE_CUSTOMER, SCOPE_SERVICE, Principal, check_wallet_access
from api.auth import require_scope as _require_scope
from api.deps import (
    REPLAY_HEADER,
    Admin,
    AppSettings,
    Connection,
    IdempotencyKey,
    Service,
    TemporalClient,
    UserId,
    WalletReader,
)
from api.errors import error_responses
from api.temporal import vouchers as voucher_client
from loyalty.vouchers import catalog as voucher_catalog
from loyalty.vouchers import issued
from loyalty.vouchers.contracts import VoucherOut
from loyalty.vouchers.rules import VoucherStatus
from loyalty.vouchers.schemas import (
    CodesIn,
    CodesUploaded,
    ProductIn,
    ProductOut,
    ProductPatch,
    PurchaseIn,
    UseVoucherIn,
    VoucherList,
)

catalog = APIRouter(prefix="/vouchers/products", tags=["vouchers"])
wallet_vouchers = APIRouter(prefix="/wallets", tags=["vouchers"])

ProductId = Annotated[uuid.UUID, Path(alias="productId")]
VoucherId = Annotated[uuid.UUID, Path(alias="voucherId")]

_any_caller = _require_scope(SCOPE_CUSTOMER, SCOPE_SERVICE, SCOPE_ADMIN)
_buyer_scopes = _require_scope(SCOPE_CUSTOMER, SCOPE_SERVICE)


async def _buyer(principal: Annotated[Principal, Depends(_buyer_scopes)], user_id: UserId) -> None:
    """The wallet's owner or the booking service."""
    check_wallet_access(principal, user_id)


AnyCaller = Annotated[Principal, Depends(_any_caller)]


# --- catalog ---------------------------------------------------------------------------------


@catalog.post("", response_model=ProductOut, status_code=201, responses=error_responses())
async def create_product(body: ProductIn, principal: Admin, conn: Connection) -> ProductOut:
    """Add a voucher to the catalog."""
    return await voucher_catalog.create_product(conn, body)


@catalog.get("", response_model=list[ProductOut], responses=error_responses())
async def list_products(
    principal: AnyCaller,
    conn: Connection,
    include_inactive: Annotated[bool, Query(description="admins only")] = False,
) -> list[ProductOut]:
    """The catalog: active vouchers (admins may include inactive ones)."""
    return await voucher_catalog.list_products(
        conn, include_inactive=include_inactive and SCOPE_ADMIN in principal.scopes
    )


@catalog.get("/{productId}", response_model=ProductOut, responses=error_responses(404))
async def get_product(product_id: ProductId, principal: AnyCaller, conn: Connection) -> ProductOut:
    """One voucher of the catalog, with its inventory."""
    return await voucher_catalog.get_product(conn, product_id)


@catalog.patch("/{productId}", response_model=ProductOut, responses=error_responses(404))
async def update_product(
    product_id: ProductId, body: ProductPatch, principal: Admin, conn: Connection
) -> ProductOut:
    """Change a voucher: price, inventory, sale window, validity, tier, limit, active flag."""
    return await voucher_catalog.update_product(conn, product_id, body)


@catalog.delete("/{productId}", response_model=ProductOut, responses=error_responses(404))
async def deactivate_product(
    product_id: ProductId, principal: Admin, conn: Connection
) -> ProductOut:
    """Deactivate a voucher: no longer sold; vouchers already issued stay valid."""
    return await voucher_catalog.update_product(conn, product_id, ProductPatch(active=False))


@catalog.post("/{productId}/codes", response_model=CodesUploaded, responses=error_responses(404))
async def upload_codes(
    product_id: ProductId, body: CodesIn, principal: Admin, conn: Connection
) -> CodesUploaded:
    """Upload a batch of codes to an uploaded-code voucher; each new code is one more for sale."""
    return await voucher_catalog.upload_codes(conn, product_id, body.codes)


# --- a customer's vouchers -------------------------------------------------------------------


@wallet_vouchers.post(
    "/{userId}/vouchers",
    response_model=VoucherOut,
    status_code=201,
    dependencies=[Depends(_buyer)],
    responses=error_responses(404, 409, 503),
)
async def buy_voucher(
    user_id: UserId,
    body: PurchaseIn,
    idempotency_key: IdempotencyKey,
    settings: AppSettings,
    client: TemporalClient,
) -> VoucherOut:
    """Buy a voucher with points (VoucherPurchaseWorkflow). Refusals: insufficient_points,
    voucher_sold_out, tier_too_low, voucher_limit_reached, voucher_not_available. A repeat with
    the same Idempotency-Key returns the same voucher."""
    return await voucher_client.purchase(
        client,
        user_id=user_id,
        product_id=body.product_id,
        idempotency_key=idempotency_key,
        task_queue=settings.temporal_task_queue,
    )


@wallet_vouchers.get("/{userId}/vouchers", response_model=VoucherList, responses=error_responses())
async def list_vouchers(
    user_id: UserId,
    principal: WalletReader,
    conn: Connection,
    status: Annotated[VoucherStatus | None, Query()] = None,
) -> VoucherList:
    """The customer's vouchers, newest first, with status (active, used, expired)."""
    return VoucherList(items=await issued.list_vouchers(conn, user_id, status=status))


@wallet_vouchers.post(
    "/{userId}/vouchers/{voucherId}/use",
    response_model=VoucherOut,
    responses=error_responses(404, 409),
)
async def use_voucher(
    user_id: UserId,
    voucher_id: VoucherId,
    principal: Service,
    conn: Connection,
    response: Response,
    body: UseVoucherIn | None = None,
) -> VoucherOut:
    """Mark the voucher used (a repeat with the same reference replays)."""
    reference = body.reference if body else None
    voucher, replayed = await issued.use_voucher(conn, user_id, voucher_id, reference)
    if replayed:
        response.headers[REPLAY_HEADER] = "true"
    return voucher


router = APIRouter()
router.include_router(catalog)
router.include_router(wallet_vouchers)
