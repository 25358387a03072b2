"""Production sign-in to the pages: OpenID Connect authorization code flow with PKCE (S256),
through Authlib, against the identity provider that issues the API's tokens.

/signin redirects to the provider's authorization endpoint with a fresh `state`, `nonce` and
PKCE verifier (kept in a short-lived HttpOnly cookie, signed with SESSION_SECRET); /signin/callback
checks the state, exchanges the code with the verifier, and keeps the access token as the
session (the same token and scope rules as the API: TokenVerifier checks it against
JWT_JWKS_URL).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from base64 import urlsafe_b64decode, urlsafe_b64encode

import httpx
from authlib.common.security import generate_token
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from api.pages.session import local_path, set_session
from loyalty.core.settings import Settings

router = APIRouter(include_in_schema=False)
FLOW_COOKIE = "loyalty_oidc_flow"
FLOW_SECONDS = 600


def _configured(settings: Settings) -> bool:
    return bool(settings.oidc_discovery_url and settings.oidc_client_id)


async def _metadata(settings: Settings) -> dict[str, str]:
    assert settings.oidc_discovery_url is not None
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.get(settings.oidc_discovery_url)
        answer.raise_for_status()
        data: dict[str, str] = answer.json()
        return data


def _redirect_uri(request: Request) -> str:
    return str(request.url_for("oidc_callback"))


def _seal(settings: Settings, flow: dict[str, str]) -> str:
    body = urlsafe_b64encode(json.dumps(flow).encode()).decode()
    mac = hmac.new(settings.session_secret.encode(), body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{mac}"


def _unseal(settings: Settings, sealed: str | None) -> dict[str, str] | None:
    if not sealed or "." not in sealed:
        return None
    body, mac = sealed.rsplit(".", 1)
    good = hmac.new(settings.session_secret.encode(), body.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(good, mac):
        return None
    flow: dict[str, str] = json.loads(urlsafe_b64decode(body))
    return flow


async def start(request: Request, next_path: str | None) -> Response:
    settings: Settings = request.app.state.settings
    if not _configured(settings):
        return Response("sign-in is not configured (OIDC_DISCOVERY_URL)", status_code=503)
    metadata = await _metadata(settings)
    verifier = generate_token(64)
    state = generate_token(32)
    url = add_params_to_uri(
        metadata["authorization_endpoint"],
        [
            ("response_type", "code"),
            ("client_id", str(settings.oidc_client_id)),
            ("redirect_uri", _redirect_uri(request)),
            ("scope", "openid"),
            ("state", state),
            ("nonce", secrets.token_urlsafe(16)),
            ("code_challenge", create_s256_code_challenge(verifier)),
            ("code_challenge_method", "S256"),
        ],
    )
    flow = {"state": state, "verifier": verifier, "next": next_path or "/admin"}
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        FLOW_COOKIE,
        _seal(settings, flow),
        max_age=FLOW_SECONDS,
        httponly=True,
        secure=True,
        samesite="lax",
        path="/signin",
    )
    return response


@router.get("/signin/callback", name="oidc_callback")
async def callback(request: Request, code: str = "", state: str = "") -> Response:
    settings: Settings = request.app.state.settings
    if settings.environment != "production" or not _configured(settings):
        return Response(status_code=404)
    flow = _unseal(settings, request.cookies.get(FLOW_COOKIE))
    if flow is None or not hmac.compare_digest(flow["state"], state) or not code:
        return Response("the sign-in expired or was not started here; sign in again", 400)
    metadata = await _metadata(settings)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": _redirect_uri(request),
        "client_id": str(settings.oidc_client_id),
        "code_verifier": flow["verifier"],
    }
    if settings.oidc_client_secret:
        form["client_secret"] = settings.oidc_client_secret
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.post(metadata["token_endpoint"], data=form)
    if answer.status_code != 200:
        return Response("the identity provider refused the sign-in; sign in again", 400)
    token = answer.json()
    access = str(token["access_token"])
    target = flow["next"] if local_path(flow["next"]) else "/admin"
    response = RedirectResponse(target, status_code=303)
    set_session(response, settings, access, int(token.get("expires_in", 3600)))
    response.delete_cookie(FLOW_COOKIE, path="/signin")
    return response


__all__ = ["callback", "router", "start"]
