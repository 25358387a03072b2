"""Backoffice configuration pages (loyalty:admin): the tier ladder, campaigns, customers by
tier (with CSV export) and the voucher catalog with code uploads. Each form goes through the
same domain functions as the API's endpoints; a refused form is shown again with the error next
to its field, and nothing changed (the transaction is rolled back)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from pydantic import ValidationError

from api.pages.forms import field_errors, integer, read_form, refusal_errors
from api.pages.render import render
from api.pages.session import AdminVisitor
from loyalty.core import db
from loyalty.core.errors import LoyaltyError
from loyalty.earning import campaigns
from loyalty.earning.schemas import CampaignIn, CampaignPatch
from loyalty.tiers import admin as tier_admin
from loyalty.tiers.schemas import TierPatch
from loyalty.vouchers import catalog
from loyalty.vouchers.schemas import CodesIn, ProductIn
from loyalty.wallets import customers
from loyalty.wallets.schemas import CustomerQuery

router = APIRouter(include_in_schema=False)


def instant(value: str | None) -> datetime | str | None:
    """A datetime-local field, read as UTC (the page says so); the text when it does not parse
    (the model refuses it with the field named)."""
    if value is None or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return value
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def tags(value: str | None) -> list[str]:
    return [t.strip() for t in (value or "").split(",") if t.strip()]


# --- tiers -----------------------------------------------------------------------------------


async def _tiers_page(
    request: Request, principal: Any, status_code: int = 200, **extra: Any
) -> Response:
    async with db.transaction(request.app.state.engine) as conn:
        ladder = await tier_admin.list_tiers(conn)
    extra.setdefault("errors", {})
    extra.setdefault("values", {})
    return await render(
        request, "admin_tiers.html", status_code, principal=principal, ladder=ladder, **extra
    )


@router.get("/admin/tiers")
async def tiers(request: Request, principal: AdminVisitor) -> Response:
    return await _tiers_page(request, principal, saved=request.query_params.get("saved"))


@router.post("/admin/tiers/{code}")
async def update_tier(request: Request, principal: AdminVisitor, code: str) -> Response:
    fields = await read_form(request)
    patch = {
        "name": fields.get("name", "").strip() or None,
        "threshold": integer(fields.get("threshold")),
        "earn_multiplier_pct": integer(fields.get("earn_multiplier_pct")),
        "redemption_cap_pct": integer(fields.get("redemption_cap_pct")),
        "redemption_cap_points": integer(fields.get("redemption_cap_points")),
    }
    # name, threshold and multiplier left empty are kept; empty caps mean "no cap" (null).
    body = {k: v for k, v in patch.items() if v is not None or k.startswith("redemption_cap")}
    try:
        async with db.transaction(request.app.state.engine) as conn:
            await tier_admin.update_tier(conn, code, TierPatch.model_validate(body))
    except ValidationError as exc:
        errors = field_errors(exc)
    except LoyaltyError as exc:
        errors = refusal_errors(exc)
    else:
        return RedirectResponse(f"/admin/tiers?saved={code}", status_code=303)
    return await _tiers_page(request, principal, 422, errors={code: errors}, values={code: fields})


# --- campaigns -------------------------------------------------------------------------------


async def _campaigns_page(
    request: Request, principal: Any, status_code: int = 200, **extra: Any
) -> Response:
    async with db.transaction(request.app.state.engine) as conn:
        listed = await campaigns.list_campaigns(conn)
    extra.setdefault("errors", {})
    extra.setdefault("values", {})
    return await render(
        request,
        "admin_campaigns.html",
        status_code,
        principal=principal,
        campaigns=listed,
        **extra,
    )


@router.get("/admin/campaigns")
async def campaign_list(request: Request, principal: AdminVisitor) -> Response:
    return await _campaigns_page(request, principal, saved=request.query_params.get("saved"))


@router.post("/admin/campaigns")
async def create_campaign(request: Request, principal: AdminVisitor) -> Response:
    fields = await read_form(request)
    kind = fields.get("kind", "")
    body = {
        "campaign_id": fields.get("campaign_id", "").strip(),
        "name": fields.get("name", "").strip(),
        "kind": kind,
        "multiplier_pct": integer(fields.get("multiplier_pct")) if kind == "multiplier" else None,
        "bonus_points": integer(fields.get("bonus_points")) if kind == "bonus" else None,
        "product_types": tags(fields.get("product_types")),
        "categories": tags(fields.get("categories")),
        "cap_points_per_booking": integer(fields.get("cap_points_per_booking")),
        "starts_at": instant(fields.get("starts_at")),
        "ends_at": instant(fields.get("ends_at")),
    }
    try:
        campaign = CampaignIn.model_validate(body)
        async with db.transaction(request.app.state.engine) as conn:
            await campaigns.create(conn, campaign, actor=principal.subject)
    except ValidationError as exc:
        errors = field_errors(exc)
    except LoyaltyError as exc:
        errors = {"campaign_id": exc.message}
    else:
        return RedirectResponse(f"/admin/campaigns?saved={body['campaign_id']}", status_code=303)
    return await _campaigns_page(request, principal, 422, errors=errors, values=fields)


@router.post("/admin/campaigns/{campaign_id}/edit")
async def edit_campaign(request: Request, principal: AdminVisitor, campaign_id: str) -> Response:
    fields = await read_form(request)
    body: dict[str, Any] = {"name": fields.get("name", "").strip() or None}
    if fields.get("ends_at"):
        body["ends_at"] = instant(fields.get("ends_at"))
    body["cap_points_per_booking"] = integer(fields.get("cap_points_per_booking"))
    try:
        async with db.transaction(request.app.state.engine) as conn:
            patch = CampaignPatch.model_validate(
                {k: v for k, v in body.items() if k != "name" or v is not None}
            )
            await campaigns.update(conn, campaign_id, patch)
    except ValidationError as exc:
        errors = field_errors(exc)
    except LoyaltyError as exc:
        errors = refusal_errors(exc)
    else:
        return RedirectResponse(f"/admin/campaigns?saved={campaign_id}", status_code=303)
    return await _campaigns_page(request, principal, 422, edit_errors={campaign_id: errors})


@router.post("/admin/campaigns/{campaign_id}/end")
async def end_campaign(request: Request, principal: AdminVisitor, campaign_id: str) -> Response:
    await read_form(request)
    async with db.transaction(request.app.state.engine) as conn:
        await campaigns.end(conn, campaign_id)
    return RedirectResponse(f"/admin/campaigns?saved={campaign_id}", status_code=303)


# --- customers by tier -----------------------------------------------------------------------


def _customer_query(request: Request, **extra: Any) -> CustomerQuery:
    params = request.query_params
    values: dict[str, Any] = {"tier": [t for t in params.getlist("tier") if t]}
    for name in ("min_balance", "max_balance", "min_lifetime", "max_lifetime"):
        if params.get(name):
            values[name] = params.get(name)
    if params.get("cursor"):
        values["cursor"] = params.get("cursor")
    return CustomerQuery.model_validate({**values, **extra})


@router.get("/admin/customers")
async def customer_list(request: Request, principal: AdminVisitor) -> Response:
    async with db.transaction(request.app.state.engine) as conn:
        ladder = await tier_admin.list_tiers(conn)
        try:
            query = _customer_query(request, limit=50)
            page = await customers.customer_page(conn, query)
            errors: dict[str, str] = {}
        except ValidationError as exc:
            errors, page = field_errors(exc), None
        except LoyaltyError as exc:
            errors, page = refusal_errors(exc), None
    return await render(
        request,
        "admin_customers.html",
        422 if errors else 200,
        principal=principal,
        ladder=ladder,
        page=page,
        errors=errors,
        params=request.query_params,
        chosen=request.query_params.getlist("tier"),
    )


@router.get("/admin/customers.csv")
async def customer_csv(request: Request, principal: AdminVisitor) -> Response:
    try:
        query = _customer_query(request)
    except ValidationError:
        return Response("bad filters", status_code=422)
    return StreamingResponse(
        customers.customer_csv(request.app.state.engine, query),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="customers.csv"'},
    )


# --- vouchers --------------------------------------------------------------------------------


async def _vouchers_page(
    request: Request, principal: Any, status_code: int = 200, **extra: Any
) -> Response:
    async with db.transaction(request.app.state.engine) as conn:
        products = await catalog.list_products(conn, include_inactive=True)
    extra.setdefault("errors", {})
    extra.setdefault("values", {})
    return await render(
        request,
        "admin_vouchers.html",
        status_code,
        principal=principal,
        products=products,
        **extra,
    )


@router.get("/admin/vouchers")
async def vouchers(request: Request, principal: AdminVisitor) -> Response:
    return await _vouchers_page(request, principal, saved=request.query_params.get("saved"))


@router.post("/admin/vouchers")
async def create_product(request: Request, principal: AdminVisitor) -> Response:
    fields = await read_form(request)
    body = {
        "name": fields.get("name", "").strip(),
        "price_points": integer(fields.get("price_points")),
        "code_source": fields.get("code_source", "generated"),
        "inventory": integer(fields.get("inventory")),
        "voucher_valid_days": integer(fields.get("voucher_valid_days")),
    }
    try:
        product = ProductIn.model_validate({k: v for k, v in body.items() if v is not None})
        async with db.transaction(request.app.state.engine) as conn:
            created = await catalog.create_product(conn, product)
    except ValidationError as exc:
        errors = field_errors(exc)
    except LoyaltyError as exc:
        errors = refusal_errors(exc)
    else:
        return RedirectResponse(f"/admin/vouchers?saved={created.product_id}", status_code=303)
    return await _vouchers_page(request, principal, 422, errors=errors, values=fields)


@router.post("/admin/vouchers/{product_id}/codes")
async def upload_codes(
    request: Request, principal: AdminVisitor, product_id: uuid.UUID
) -> Response:
    fields = await read_form(request)
    codes = [c.strip() for c in fields.get("codes", "").splitlines() if c.strip()]
    try:
        body = CodesIn.model_validate({"codes": codes})
        async with db.transaction(request.app.state.engine) as conn:
            await catalog.upload_codes(conn, product_id, body.codes)
    except ValidationError as exc:
        errors = field_errors(exc)
    except LoyaltyError as exc:
        errors = refusal_errors(exc)
    else:
        return RedirectResponse(f"/admin/vouchers?saved={product_id}", status_code=303)
    return await _vouchers_page(
        request,
        principal,
        422,
        code_errors={str(product_id): errors.get("codes") or next(iter(errors.values()))},
    )
