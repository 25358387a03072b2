"""OAuth2 bearer JWTs with scopes.

Scopes (space-separated in the `scope` claim):
- `wallet:self`      a customer; `sub` is their user id; reads only their own wallet
- `loyalty:service`  the booking service: earns, redeems, confirms, releases; reads wallets
- `loyalty:admin`    backoffice: reads any wallet, adjusts, configures (tiers, campaigns, vouchers)

Development and tests verify HS256 tokens signed with JWT_DEV_SECRET (minted by `python -m
api.tokens`); with JWT_JWKS_URL set, only RS256/ES256 tokens signed by a key of that JWKS are
accepted. Issuer, audience, expiry and subject are always required.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import jwt
from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.errors import ServiceUnavailable
from loyalty.core.errors import Forbidden, Unauthorized
from loyalty.core.settings import Settings

SCOPE_CUSTOMER = "wallet:self"
SCOPE_SERVICE = "loyalty:service"
SCOPE_ADMIN = "loyalty:admin"
SCOPES = {
    SCOPE_CUSTOMER: "a customer: their own wallet (sub = user id)",
    SCOPE_SERVICE: "the booking service: earn, redeem, confirm, release; read wallets",
    SCOPE_ADMIN: "backoffice: read any wallet, adjust, configure",
}
SECURITY_SCHEME = "bearerAuth"
LEEWAY_SECONDS = 30
JWKS_ALGORITHMS = ["RS256", "ES256"]
# Verified tokens are remembered (the booking service sends the same token for its whole
# lifetime; verifying it costs about 0.1 ms a request), until the token expires and at most as
# long as the JWKS keys are cached: a token of a withdrawn key works at most that much longer.
VERIFIED_TOKENS_KEPT = 4096
VERIFIED_TOKEN_SECONDS = 300
DEV_ALGORITHMS = ["HS256"]

bearer_scheme = HTTPBearer(
    scheme_name=SECURITY_SCHEME,
    bearerFormat="JWT",
    description="OAuth2 access token (JWT). Scopes: "
    + "; ".join(f"`{name}`: {text}" for name, text in SCOPES.items()),
    auto_error=False,
)


class InvalidToken(Unauthorized):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        error = ', error="invalid_token"' if message != "a bearer token is required" else ""
        description = message.replace('"', "'")
        self.response_headers = {
            "WWW-Authenticate": f'Bearer realm="loyalty"{error}, error_description="{description}"'
        }


class InsufficientScope(Forbidden):
    def __init__(self, message: str, *, needed: tuple[str, ...]) -> None:
        super().__init__(message, needed_scopes=list(needed))
        self.response_headers = {
            "WWW-Authenticate": (
                f'Bearer realm="loyalty", error="insufficient_scope", scope="{" ".join(needed)}"'
            )
        }


@dataclass(frozen=True)
class Principal:
    subject: str
    scopes: frozenset[str]

    def can_read_wallet(self, user_id: str) -> bool:
        if self.scopes & {SCOPE_ADMIN, SCOPE_SERVICE}:
            return True
        return SCOPE_CUSTOMER in self.scopes and self.subject == user_id


class TokenVerifier:
    """Checks signature, issuer, audience, expiry; made once per app (it caches the JWKS)."""

    def __init__(self, settings: Settings) -> None:
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._jwks: jwt.PyJWKClient | None = None
        if settings.jwt_jwks_url:
            self._jwks = jwt.PyJWKClient(settings.jwt_jwks_url, lifespan=300, timeout=5)
        self._dev_secret = settings.jwt_dev_secret
        self._verified: dict[str, tuple[float, Principal]] = {}  # token -> (good until, who)

    async def _key(self, token: str) -> tuple[Any, list[str]]:
        if self._jwks is None:
            return self._dev_secret, DEV_ALGORITHMS
        try:
            # PyJWKClient fetches with blocking urllib; keep it off the event loop.
            signing_key = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
        except jwt.PyJWKClientConnectionError as exc:
            raise ServiceUnavailable("the identity provider's keys cannot be fetched") from exc
        except (jwt.PyJWKClientError, jwt.DecodeError) as exc:
            raise InvalidToken("the token is not signed by a known key") from exc
        return signing_key.key, JWKS_ALGORITHMS

    async def verify(self, token: str) -> Principal:
        now = time.time()
        known = self._verified.get(token)
        if known is not None:
            if now < known[0]:
                return known[1]
            del self._verified[token]
        key, algorithms = await self._key(token)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("the token has expired") from exc
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"the token is invalid: {exc}") from exc
        principal = Principal(subject=str(claims["sub"]), scopes=_scopes(claims.get("scope")))
        good_until = min(float(claims["exp"]) + LEEWAY_SECONDS, now + VERIFIED_TOKEN_SECONDS)
        if len(self._verified) >= VERIFIED_TOKENS_KEPT:
            del self._verified[next(iter(self._verified))]  # the oldest
        self._verified[token] = (good_until, principal)
        return principal


def _scopes(claim: object) -> frozenset[str]:
    if isinstance(claim, str):
        return frozenset(claim.split())
    if isinstance(claim, list):
        return frozenset(s for s in claim if isinstance(s, str))
    return frozenset()


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
) -> Principal:
    if credentials is None:
        raise InvalidToken("a bearer token is required")
    verifier: TokenVerifier = request.app.state.token_verifier
    return await verifier.verify(credentials.credentials)


def require_scope(*scopes: str) -> Callable[..., Awaitable[Principal]]:
    """Dependency: an authenticated caller holding at least one of `scopes`.

    The scopes are declared with Security() so they reach the OpenAPI document, where api.app
    lists them as alternative requirements (any one of them is enough)."""

    # A default, not an Annotated hint: the hint would name a local that string annotations
    # (from __future__ import annotations) cannot resolve.
    authenticated = Security(authenticate, scopes=list(scopes))

    async def dependency(principal: Principal = authenticated) -> Principal:
        if not principal.scopes & set(scopes):
            raise InsufficientScope(
                f"this needs one of the scopes: {', '.join(scopes)}", needed=scopes
            )
        return principal

    return dependency


def check_wallet_access(principal: Principal, user_id: str) -> None:
    if not principal.can_read_wallet(user_id):
        raise InsufficientScope(
            "a customer may only read their own wallet", needed=(SCOPE_ADMIN, SCOPE_SERVICE)
        )
