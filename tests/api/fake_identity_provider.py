"""A fake OpenID Connect identity provider for the pages' production sign-in tests: discovery,
an authorization endpoint that approves at once, a token endpoint that checks PKCE (S256), and
the JWKS of the RS256 key that signs its access tokens. A fake: no users, no consent, no refresh
tokens; only what the authorization code flow with PKCE needs to be exercised for real."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse

from tests.harness.api import serve_app


@dataclass
class FakeIdentityProvider:
    audience: str
    subject: str = "ops-oidc"
    scope: str = "loyalty:admin"
    url: str = ""
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)

    @property
    def issuer(self) -> str:
        return self.url

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/.well-known/openid-configuration")
        async def discovery() -> dict[str, Any]:
            return {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token",
                "jwks_uri": f"{self.url}/jwks",
                "code_challenge_methods_supported": ["S256"],
            }

        @app.get("/authorize")
        async def authorize(request: Request) -> RedirectResponse:
            q = request.query_params
            assert q["response_type"] == "code" and q["code_challenge_method"] == "S256"
            code = secrets.token_urlsafe(16)
            self.codes[code] = {"challenge": q["code_challenge"], "redirect_uri": q["redirect_uri"]}
            query = urlencode({"code": code, "state": q["state"]})
            return RedirectResponse(f"{q['redirect_uri']}?{query}", status_code=302)

        @app.post("/token")
        async def token(
            grant_type: str = Form(),
            code: str = Form(),
            redirect_uri: str = Form(),
            code_verifier: str = Form(""),
            client_id: str = Form(""),
        ) -> JSONResponse:
            self.token_requests.append({"code": code, "verifier": code_verifier})
            issued = self.codes.pop(code, None)
            digest = hashlib.sha256(code_verifier.encode()).digest()
            challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if (
                grant_type != "authorization_code"
                or issued is None
                or issued["redirect_uri"] != redirect_uri
                or issued["challenge"] != challenge
            ):
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            now = int(time.time())
            claims = {
                "iss": self.issuer,
                "aud": self.audience,
                "sub": self.subject,
                "scope": self.scope,
                "iat": now,
                "exp": now + 600,
            }
            access = jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "fake-1"})
            return JSONResponse({"access_token": access, "token_type": "Bearer", "expires_in": 600})

        @app.get("/jwks")
        async def jwks() -> dict[str, Any]:
            public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
            return {"keys": [{**public, "kid": "fake-1", "use": "sig", "alg": "RS256"}]}

        return app


@contextlib.asynccontextmanager
async def running(audience: str) -> AsyncIterator[FakeIdentityProvider]:
    idp = FakeIdentityProvider(audience=audience)
    async with serve_app(idp.app()) as url:
        idp.url = url
        yield idp
