"""The backoffice (/admin, loyalty:admin): the dashboard (points issued, redeemed and expired
per day), finding a customer, their wallet, tier history and checkouts (with links to the
Temporal UI), and the adjustment form. Tiers, campaigns, customers by tier and vouchers are in
api.pages.admin_config."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from temporalio.client import Client

from api.pages.forms import field_errors, integer, read_form, refusal_errors
from api.pages.render import render
from api.pages.session import AdminVisitor
from api.pages.wallet import wallet_context
from api.temporal import LazyTemporalClient
from loyalty.core import db
from loyalty.core.errors import LoyaltyError
from loyalty.core.settings import Settings
from loyalty.wallets import backoffice, views
from loyalty.wallets.schemas import AdjustmentIn

router = APIRouter(include_in_schema=False)
CHART_DAYS = 30


def bars(days: list[backoffice.PointsDay], field: str) -> list[dict[str, Any]]:
    """Bar heights (0-100) of one series, for an inline SVG chart."""
    top = max((getattr(d, field) for d in days), default=0) or 1
    return [
        {"day": d.day.isoformat(), "value": getattr(d, field), "h": 100 * getattr(d, field) // top}
        for d in days
    ]


@router.get("/admin")
async def dashboard(request: Request, principal: AdminVisitor, user: str | None = None) -> Response:
    if user:
        return RedirectResponse(f"/admin/customers/{quote(user.strip(), safe='')}", 303)
    async with db.transaction(request.app.state.engine) as conn:
        days = await backoffice.points_per_day(conn, CHART_DAYS)
    charts = {name: bars(days, name) for name in ("issued", "redeemed", "expired")}
    return await render(request, "admin.html", principal=principal, charts=charts, days=days)


async def _checkouts(request: Request, user_id: str) -> list[dict[str, str]]:
    """The customer's checkouts (their RedemptionWorkflow runs), with Temporal UI links."""
    settings: Settings = request.app.state.settings
    lazy: LazyTemporalClient = request.app.state.temporal
    ui = settings.temporal_ui_url
    if ui is None and settings.environment == "development":  # `make run`'s dev server UI
        ui = f"http://127.0.0.1:{settings.temporal_ui_port}"
    if any(c in user_id for c in "'\"\\"):  # not quotable in a visibility query: no list
        return []
    try:
        client: Client = await lazy.get()
        found = []
        query = f"LoyaltyUserId = '{user_id}' AND WorkflowType = 'RedemptionWorkflow'"
        async for wf in client.list_workflows(query, limit=20):
            link = None
            if ui:
                link = (
                    f"{ui.rstrip('/')}/namespaces/"
                    f"{settings.temporal_namespace}/workflows/{wf.id}/{wf.run_id}/history"
                )
            found.append(
                {
                    "id": wf.id,
                    "run_id": wf.run_id,
                    "status": wf.status.name if wf.status else "",
                    "started": wf.start_time.strftime("%Y-%m-%d %H:%M"),
                    "link": link or "",
                }
            )
        return found
    except Exception:
        return []


async def _customer(
    request: Request, principal: Any, user_id: str, status_code: int = 200, **form: Any
) -> Response:
    settings: Settings = request.app.state.settings
    context = await wallet_context(request, settings, user_id, [], None)
    async with db.transaction(request.app.state.engine) as conn:
        history = await backoffice.tier_history(conn, user_id)
    form.setdefault("key", str(uuid.uuid4()))
    form.setdefault("errors", {})
    return await render(
        request,
        "admin_customer.html",
        status_code,
        principal=principal,
        tier_history=history,
        checkouts=await _checkouts(request, user_id),
        form=form,
        adjusted=request.query_params.get("adjusted"),
        **context,
    )


@router.get("/admin/customers/{user_id}")
async def customer(request: Request, principal: AdminVisitor, user_id: str) -> Response:
    return await _customer(request, principal, user_id)


@router.post("/admin/customers/{user_id}/adjust")
async def adjust(request: Request, principal: AdminVisitor, user_id: str) -> Response:
    fields = await read_form(request)
    key = fields.get("idempotency_key", "")
    values = {"points": fields.get("points", ""), "reason": fields.get("reason", ""), "key": key}
    try:
        if not key or len(key) > 200:
            raise LoyaltyError("the form is stale: reload the page")
        body = AdjustmentIn.model_validate(
            {"points": integer(fields.get("points")), "reason": fields.get("reason", "").strip()}
        )
        async with db.autocommit(request.app.state.engine) as conn:
            # The form's key is made when the form is shown: a double submit posts once.
            result = await views.adjust(
                conn, user_id, body, idempotency_key=f"backoffice:{key}", actor=principal.subject
            )
    except ValidationError as exc:
        return await _customer(request, principal, user_id, 422, errors=field_errors(exc), **values)
    except LoyaltyError as exc:
        return await _customer(
            request, principal, user_id, 422, errors=refusal_errors(exc), **values
        )
    return RedirectResponse(
        f"/admin/customers/{user_id}?adjusted={result.transaction.tx_id}", status_code=303
    )
