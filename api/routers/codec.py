"""The codec server: the Temporal UI (and `temporal --codec-endpoint`) sends the payloads it
shows to `/codec/decode` and gets them back decrypted, for admins only; without an admin token
the UI shows the ciphertext. `/codec/encode` encrypts, for the UI's "start workflow" and
"signal" forms. Payloads travel as Temporal's JSON form: metadata values and data in base64.

The UI calls from its own origin (another port), so these two paths answer CORS for the
origins of CODEC_CORS_ORIGINS, and only these paths (CodecCors)."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Security
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.api.common.v1 import Payload

from api.auth import SCOPE_ADMIN, InsufficientScope, InvalidToken, Principal, bearer_scheme
from api.errors import error_responses
from api.pages.session import SESSION_COOKIE
from loyalty.core.errors import LoyaltyError, ValidationFailed
from loyalty.core.payload_encryption import EncryptionCodec, PayloadKeyError

PREFIX = "/codec"
MAX_PAYLOADS = 1000

router = APIRouter(prefix=PREFIX, tags=["codec"])


class PayloadUndecryptable(LoyaltyError):
    code = "payload_undecryptable"
    status_code = 422


class PayloadJson(BaseModel):
    """One payload: metadata values and data, each base64."""

    model_config = ConfigDict(extra="ignore")

    metadata: dict[Annotated[str, Field(max_length=256)], str] = Field(
        default_factory=dict, max_length=32
    )
    data: str = ""


class PayloadsJson(BaseModel):
    model_config = ConfigDict(extra="ignore")

    payloads: list[PayloadJson] = Field(default_factory=list, max_length=MAX_PAYLOADS)


def _bytes(text: str, where: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise ValidationFailed(f"{where} is not base64") from err


def _text(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _to_payloads(body: PayloadsJson) -> list[Payload]:
    return [
        Payload(
            metadata={k: _bytes(v, f"payloads[{i}].metadata.{k}") for k, v in p.metadata.items()},
            data=_bytes(p.data, f"payloads[{i}].data"),
        )
        for i, p in enumerate(body.payloads)
    ]


def _to_json(payloads: list[Payload]) -> PayloadsJson:
    return PayloadsJson(
        payloads=[
            PayloadJson(metadata={k: _text(v) for k, v in p.metadata.items()}, data=_text(p.data))
            for p in payloads
        ]
    )


def _codec(request: Request) -> EncryptionCodec:
    codec = request.app.state.payload_codec
    if not isinstance(codec, EncryptionCodec):
        raise PayloadUndecryptable("payload encryption is off in this service")
    return codec


# The UI names the namespace in X-Namespace; one key set serves every namespace here.
Namespace = Annotated[str | None, Header(alias="X-Namespace", max_length=256)]


async def codec_admin(
    request: Request,
    credentials: Annotated[
        HTTPAuthorizationCredentials | None, Security(bearer_scheme, scopes=[SCOPE_ADMIN])
    ],
) -> Principal:
    """An admin, by bearer token (the CLI, scripts) or by the session cookie of an admin signed
    in to the pages (the Temporal UI in a browser sends it with cross-origin credentials, as it
    cannot send a bearer token of ours). Decoding changes nothing, and the CORS preflight keeps
    other origins' pages from sending the cookie's request at all."""
    token = credentials.credentials if credentials else request.cookies.get(SESSION_COOKIE)
    if not token:
        raise InvalidToken("a bearer token or an admin's signed-in session is required")
    principal = await request.app.state.token_verifier.verify(token)
    if SCOPE_ADMIN not in principal.scopes:
        raise InsufficientScope(f"this needs the scope {SCOPE_ADMIN}", needed=(SCOPE_ADMIN,))
    return principal


Admin = Annotated[Principal, Depends(codec_admin)]


@router.post("/decode", response_model=PayloadsJson, responses=error_responses(422))
async def decode(
    body: PayloadsJson, request: Request, principal: Admin, namespace: Namespace = None
) -> PayloadsJson:
    """Decrypt payloads (admin). Payloads that were never encrypted come back as they are; one
    under a key this service lacks, or altered, is a 422 naming the key."""
    codec = _codec(request)
    try:
        return _to_json(await codec.decode(_to_payloads(body)))
    except PayloadKeyError as err:
        raise PayloadUndecryptable(str(err)) from err


@router.post("/encode", response_model=PayloadsJson, responses=error_responses(422))
async def encode(
    body: PayloadsJson, request: Request, principal: Admin, namespace: Namespace = None
) -> PayloadsJson:
    """Encrypt payloads with the current key (admin)."""
    return _to_json(await _codec(request).encode(_to_payloads(body)))


class CodecCors:
    """CORS for the codec paths only: the UI's origins may POST there with credentials; every
    other path keeps the browser's same-origin rule."""

    def __init__(self, app: ASGIApp, origins: list[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=["POST"],
            allow_headers=["Authorization", "Content-Type", "X-Namespace"],
            allow_credentials=True,
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(f"{PREFIX}/"):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
