"""Sign-in and sign-out. In development and tests a form mints a development token for a chosen
user and scope (as `python -m api.tokens` does); with ENVIRONMENT=production that form does not
exist (404) and /signin goes to the identity provider (api.pages.oidc)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from api.auth import SCOPE_ADMIN, SCOPE_CUSTOMER
from api.pages import oidc
from api.pages.render import render
from api.pages.session import CSRF_FIELD, check_csrf, clear_session, local_path, set_session
from api.tokens import mint_token
from loyalty.core.settings import Settings

router = APIRouter(include_in_schema=False)

SESSION_SECONDS = 8 * 3600
DEV_SCOPES = {SCOPE_CUSTOMER: "customer (wallet:self)", SCOPE_ADMIN: "backoffice (loyalty:admin)"}


def _safe_next(value: str | None, scope: str) -> str:
    if value and local_path(value):
        return value
    return "/admin" if scope == SCOPE_ADMIN else "/wallet"


@router.get("/signin")
async def signin_page(request: Request, next: str | None = None) -> Response:
    settings: Settings = request.app.state.settings
    if settings.environment == "production":
        return await oidc.start(request, next)
    return await render(request, "signin.html", scopes=DEV_SCOPES, next=next or "", errors={})


@router.post("/signin")
async def signin(
    request: Request,
    user_id: Annotated[str, Form()] = "",
    scope: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD)] = "",
) -> Response:
    settings: Settings = request.app.state.settings
    if settings.environment == "production":
        return Response(status_code=404)
    check_csrf(request, csrf_token)
    errors: dict[str, str] = {}
    user_id = user_id.strip()
    if not user_id or len(user_id) > 128 or not all("!" <= c <= "~" for c in user_id):
        errors["user_id"] = "a user id: 1-128 printable characters, no spaces"
    if scope not in DEV_SCOPES:
        errors["scope"] = "choose a scope"
    if errors:
        return await render(
            request,
            "signin.html",
            422,
            scopes=DEV_SCOPES,
            next=next,
            errors=errors,
            user_id=user_id,
        )
    token = mint_token(settings, sub=user_id, scopes=[scope], ttl=SESSION_SECONDS)
    response = RedirectResponse(_safe_next(next, scope), status_code=303)
    set_session(response, settings, token, SESSION_SECONDS)
    return response


@router.post("/signout")
async def signout(
    request: Request, csrf_token: Annotated[str, Form(alias=CSRF_FIELD)] = ""
) -> Response:
    check_csrf(request, csrf_token)
    response = RedirectResponse("/signin", status_code=303)
    clear_session(response)
    return response
