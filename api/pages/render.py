"""Jinja2 rendering for the pages: one environment, autoescaped, and the CSRF cookie set on
every page that hands out a token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from api.pages.session import CSRF_FIELD, csrf_token, current_principal, ensure_csrf_cookie

HERE = Path(__file__).parent
env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def points(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


env.filters["points"] = points


async def render(
    request: Request, template: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    principal = context.pop("principal", None) or await current_principal(request)
    html = env.get_template(template).render(
        request=request,
        principal=principal,
        is_admin=principal is not None and "loyalty:admin" in principal.scopes,
        csrf_field=CSRF_FIELD,
        csrf=csrf_token(request),
        **context,
    )
    response = HTMLResponse(html, status_code=status_code)
    ensure_csrf_cookie(request, response)
    return response
