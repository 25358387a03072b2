"""Who is signed in to the pages, and the CSRF check of their forms.

The session is the access token itself, in an HttpOnly cookie (Secure in production, SameSite
Lax): the same JWT the API takes as a bearer token, verified by the same verifier, so the pages
keep the API's scope rules (a customer reads only their own wallet; /admin needs loyalty:admin).
In development the sign-in page mints a development token; in production the token comes from
the identity provider (api.pages.oidc).

CSRF: a random token in a cookie of its own, repeated in every form (hidden field `csrf_token`)
or, for the checkout page's script, in the `X-CSRF-Token` header. A cross-site page can neither
read the cookie nor set the header, so a POST without the pair is refused before anything runs.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request, Response

from api.auth import SCOPE_ADMIN, Principal, TokenVerifier
from loyalty.core.errors import LoyaltyError
from loyalty.core.settings import Settings

SESSION_COOKIE = "loyalty_session"
CSRF_COOKIE = "loyalty_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


class SignInRequired(Exception):
    """No valid session: the pages answer with a redirect to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class PageForbidden(Exception):
    """Signed in, but not allowed here: a 403 page."""


class CsrfRefused(LoyaltyError):
    code = "csrf_refused"
    status_code = 403


def local_path(value: str | None) -> bool:
    """A path on this site: an absolute URL (or `//host`, `/\\host`, which browsers read as
    one) after sign-in would make the sign-in an open redirect."""
    return value is not None and value.startswith("/") and not value.startswith(("//", "/\\"))


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def set_session(response: Response, settings: Settings, token: str, max_age: int) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age,
        httponly=True,
        secure=settings.environment == "production",
        samesite="lax",
        path="/",
    )


def clear_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")


def csrf_token(request: Request) -> str:
    """This browser's CSRF token (made on first use; ensure_csrf_cookie sets the cookie)."""
    token = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf", None)
    if not token:
        token = secrets.token_urlsafe(32)
        request.state.new_csrf = token
    return sign_csrf(_settings(request), token)


def sign_csrf(settings: Settings, token: str) -> str:
    # The form carries the cookie's value signed with SESSION_SECRET, so a cookie planted by a
    # sibling subdomain is useless without the server's key.
    mac = hmac.new(settings.session_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
    return f"{token}.{mac[:32]}"


def ensure_csrf_cookie(request: Request, response: Response) -> None:
    new = getattr(request.state, "new_csrf", None)
    if new:
        response.set_cookie(
            CSRF_COOKIE,
            new,
            httponly=True,
            secure=_settings(request).environment == "production",
            samesite="lax",
            path="/",
        )


def check_csrf(request: Request, submitted: str | None) -> None:
    cookie = request.cookies.get(CSRF_COOKIE)
    given = submitted or request.headers.get(CSRF_HEADER)
    if not cookie or not given:
        raise CsrfRefused("the form's CSRF token is missing: reload the page")
    if not hmac.compare_digest(sign_csrf(_settings(request), cookie), given):
        raise CsrfRefused("the form's CSRF token does not match: reload the page")


async def current_principal(request: Request) -> Principal | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    verifier: TokenVerifier = request.app.state.token_verifier
    try:
        return await verifier.verify(token)
    except LoyaltyError:  # expired or not ours: as if signed out
        return None


async def signed_in(request: Request) -> Principal:
    principal = await current_principal(request)
    if principal is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(quote(target, safe="/"))
    return principal


async def admin_signed_in(principal: Annotated[Principal, Depends(signed_in)]) -> Principal:
    if SCOPE_ADMIN not in principal.scopes:
        raise PageForbidden("the backoffice needs the loyalty:admin scope")
    return principal


Visitor = Annotated[Principal, Depends(signed_in)]
AdminVisitor = Annotated[Principal, Depends(admin_signed_in)]
