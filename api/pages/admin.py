"""The backoffice (/admin, loyalty:admin): filled in by api.pages.admin_* modules."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.pages.render import render
from api.pages.session import AdminVisitor

router = APIRouter(include_in_schema=False)


@router.get("/admin")
async def dashboard(request: Request, principal: AdminVisitor) -> Response:
    return await render(request, "admin.html", principal=principal)
