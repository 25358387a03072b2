"""Who may do what: the authorization matrix, token validation, the JWKS path, the token command."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import SimpleNamespace

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from api import auth as api_auth
from api.app import create_app
from api.auth import SCOPE_ADMIN, SCOPE_CUSTOMER, SCOPE_SERVICE
from loyalty.core.settings import Settings
from tests.api.snapshots import snapshot
from tests.harness.api import in_process

ROOT = Path(__file__).resolve().parents[2]
EARN = {"booking_id": "bk-auth", "amount_paid": 250_000, "currency": "VND"}
ADJUST = {"points": 10, "reason": "goodwill"}


def _claims(settings: Settings, **overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": "admin-1",
        "scope": SCOPE_ADMIN,
        "iat": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("garbage", lambda s: "not-a-jwt"),
        (
            "bad signature",
            lambda s: jwt.encode(_claims(s), "another-secret-of-32-bytes-or-more!", "HS256"),
        ),
        (
            "expired",
            lambda s: jwt.encode(_claims(s, exp=int(time.time()) - 120), s.jwt_dev_secret, "HS256"),
        ),
        (
            "wrong audience",
            lambda s: jwt.encode(_claims(s, aud="someone-else"), s.jwt_dev_secret, "HS256"),
        ),
        ("wrong issuer", lambda s: jwt.encode(_claims(s, iss="evil"), s.jwt_dev_secret, "HS256")),
        ("no subject", lambda s: jwt.encode(_claims(s, sub=None), s.jwt_dev_secret, "HS256")),
        ("no expiry", lambda s: jwt.encode(_claims(s, exp=None), s.jwt_dev_secret, "HS256")),
        ("alg none", lambda s: jwt.encode(_claims(s), None, "none")),
    ],
)
async def test_invalid_tokens_are_401_with_www_authenticate(api, make_wallet, name, make):
    user = await make_wallet(100)
    response = await api.http.get(
        f"/wallets/{user}", headers={"Authorization": f"Bearer {make(api.settings)}"}
    )
    assert response.status_code == 401, name
    assert response.json()["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith(
        'Bearer realm="loyalty", error="invalid_token"'
    )


@pytest.mark.parametrize("header", [None, "Bearer", "Basic dXNlcjpwYXNz", "Bearer  "])
async def test_missing_token_is_401(api, make_wallet, header):
    user = await make_wallet(100)
    headers = {"Authorization": header} if header is not None else {}
    response = await api.http.get(f"/wallets/{user}/transactions", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"code": "unauthorized", "message": "a bearer token is required"}
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


# (caller, request, expected status). "owner" is a customer token for the wallet's own user,
# "other" a customer token for somebody else.
MATRIX = [
    ("none", "get", 401),
    ("owner", "get", 200),
    ("other", "get", 403),
    ("service", "get", 200),
    ("admin", "get", 200),
    ("no-scope", "get", 403),
    ("owner", "history", 200),
    ("other", "history", 403),
    ("service", "history", 200),
    ("admin", "history", 200),
    ("none", "adjust", 401),
    ("owner", "adjust", 403),
    ("service", "adjust", 403),
    ("admin", "adjust", 201),
    ("none", "earn", 401),
    ("owner", "earn", 403),
    ("admin", "earn", 403),
    ("service", "earn", 201),
]


@pytest.mark.parametrize(("caller", "action", "status"), MATRIX)
async def test_authorization_matrix(api, auth, engine, make_wallet, caller, action, status):
    user = await make_wallet(500)
    callers = {
        "owner": auth.bearer(user, SCOPE_CUSTOMER),
        "other": auth.bearer("someone-else", SCOPE_CUSTOMER),
        "service": auth.bearer("booking-service", SCOPE_SERVICE),
        "admin": auth.bearer("admin-1", SCOPE_ADMIN),
        "no-scope": auth.bearer(user, "profile:read"),
    }
    headers = dict(callers.get(caller, {}))
    before = await snapshot(engine, user)
    if action == "get":
        response = await api.http.get(f"/wallets/{user}", headers=headers)
    elif action == "history":
        response = await api.http.get(f"/wallets/{user}/transactions", headers=headers)
    elif action == "adjust":
        headers["Idempotency-Key"] = f"auth-{user}"
        response = await api.http.post(
            f"/wallets/{user}/transactions", headers=headers, json=ADJUST
        )
    else:
        body = {**EARN, "booking_id": f"bk-{user}"}
        response = await api.http.post(f"/wallets/{user}/earn", headers=headers, json=body)
    assert response.status_code == status, response.text
    after = await snapshot(engine, user)
    if status >= 400:
        expected = {401: "unauthorized", 403: "forbidden"}[status]
        assert response.json()["code"] == expected
        assert after == before
    elif action in ("adjust", "earn"):
        assert after.rows == before.rows + 1
    if status == 200 and action == "get":
        assert response.json()["balance"] == 500


async def test_forbidden_says_which_scope_is_needed(api, auth, make_wallet):
    user = await make_wallet(10)
    response = await api.http.post(
        f"/wallets/{user}/transactions",
        headers=auth.customer(user, key="k"),
        json=ADJUST,
    )
    assert response.status_code == 403
    assert response.json()["details"] == {"needed_scopes": [SCOPE_ADMIN]}
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


async def test_customer_cannot_probe_other_wallets_existence(api, auth):
    # 403 for a wallet that does not exist either: a customer learns nothing about other users.
    response = await api.http.get("/wallets/nobody-at-all", headers=auth.customer("me"))
    assert response.status_code == 403


async def test_customer_without_wallet_gets_404(api, auth, new_user_id):
    user = new_user_id()
    response = await api.http.get(f"/wallets/{user}", headers=auth.customer(user))
    assert response.status_code == 404
    assert response.json()["code"] == "wallet_not_found"


# --- JWKS (production path) -------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks_url(rsa_key) -> Iterator[str]:
    """A JWKS document served on 127.0.0.1 for as long as the module's tests run."""
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True)
    body = json.dumps({"keys": [{**jwk, "kid": "test-key-1", "use": "sig", "alg": "RS256"}]})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


async def test_jwks_tokens(settings, make_wallet, rsa_key, jwks_url):
    settings = settings.model_copy(
        update={
            "jwt_jwks_url": jwks_url,
            "jwt_issuer": "https://id.example.test/",
            "jwt_audience": "loyalty-api",
        }
    )
    user = await make_wallet(321)
    claims = _claims(settings, sub=user, scope=f"openid {SCOPE_CUSTOMER}")
    good = jwt.encode(claims, rsa_key, "RS256", headers={"kid": "test-key-1"})
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, other_key, "RS256", headers={"kid": "test-key-1"})
    unknown_kid = jwt.encode(claims, rsa_key, "RS256", headers={"kid": "rotated-away"})
    dev_token = jwt.encode(claims, settings.jwt_dev_secret, "HS256")
    async with in_process(create_app(settings)) as client:
        ok = await client.get(f"/wallets/{user}", headers={"Authorization": f"Bearer {good}"})
        assert ok.status_code == 200
        assert ok.json()["balance"] == 321
        for bad in (forged, unknown_kid, dev_token):
            response = await client.get(
                f"/wallets/{user}", headers={"Authorization": f"Bearer {bad}"}
            )
            assert response.status_code == 401, response.text
            assert response.json()["code"] == "unauthorized"


async def test_unreachable_jwks_is_503_not_401(settings, make_wallet, rsa_key):
    settings = settings.model_copy(update={"jwt_jwks_url": "http://127.0.0.1:9/jwks.json"})
    user = await make_wallet(1)
    token = jwt.encode(
        _claims(settings, sub=user, scope=SCOPE_CUSTOMER), rsa_key, "RS256", headers={"kid": "k"}
    )
    async with in_process(create_app(settings)) as client:
        response = await client.get(
            f"/wallets/{user}", headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 503
    assert response.json()["code"] == "service_unavailable"


# --- the dev token command --------------------------------------------------------------------


def _tokens_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.tokens", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_token_command_mints_a_working_token(api, make_wallet):
    user = await make_wallet(42)
    result = _tokens_command("--sub", user, "--scope", SCOPE_CUSTOMER, "--ttl", "60")
    assert result.returncode == 0, result.stderr
    minted = result.stdout.strip()
    claims = jwt.decode(minted, options={"verify_signature": False})
    assert claims["sub"] == user
    assert claims["scope"] == SCOPE_CUSTOMER
    assert claims["exp"] - claims["iat"] == 60
    response = await api.http.get(f"/wallets/{user}", headers={"Authorization": f"Bearer {minted}"})
    assert response.status_code == 200
    assert response.json()["balance"] == 42


@pytest.mark.parametrize(
    ("args", "sub", "scope"),
    [
        (["--service"], "booking-service", SCOPE_SERVICE),
        (["--admin", "--sub", "ops-7"], "ops-7", SCOPE_ADMIN),
    ],
)
def test_token_command_shortcuts(args, sub, scope):
    result = _tokens_command(*args)
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), options={"verify_signature": False})
    assert (claims["sub"], claims["scope"]) == (sub, scope)


def test_token_command_rejects_unknown_scopes():
    result = _tokens_command("--sub", "u", "--scope", "wallet:everything")
    assert result.returncode == 2
    assert "unknown scope(s): wallet:everything" in result.stderr


async def test_verified_tokens_are_remembered_until_expiry_and_at_most_five_minutes(monkeypatch):
    settings = Settings(environment="test")
    verifier = api_auth.TokenVerifier(settings)
    decoded: list[str] = []
    real_decode = jwt.decode

    def counting_decode(token, *args, **kwargs):  # type: ignore[no-untyped-def]
        decoded.append(token)
        return real_decode(token, *args, **kwargs)

    monkeypatch.setattr(api_auth.jwt, "decode", counting_decode)
    clock = [time.time()]
    # Only the verifier's clock moves; pyjwt keeps the real one.
    monkeypatch.setattr(api_auth, "time", SimpleNamespace(time=lambda: clock[0]))
    soon = jwt.encode(_claims(settings, exp=int(clock[0]) + 60), settings.jwt_dev_secret)
    later = jwt.encode(_claims(settings, sub="admin-2"), settings.jwt_dev_secret)

    assert (await verifier.verify(soon)).subject == "admin-1"
    assert (await verifier.verify(soon)).subject == "admin-1"
    assert decoded == [soon]  # the second time from memory

    # Past exp + leeway the memory no longer answers: the token is verified again (by pyjwt,
    # on the real clock, which refuses it once it has expired: the "expired" case above).
    clock[0] += 60 + api_auth.LEEWAY_SECONDS
    await verifier.verify(soon)
    assert decoded == [soon, soon]

    clock[0] = time.time()
    await verifier.verify(later)
    clock[0] += api_auth.VERIFIED_TOKEN_SECONDS - 1
    await verifier.verify(later)
    assert decoded.count(later) == 1
    clock[0] += 2  # remembered no longer than the JWKS keys are cached
    await verifier.verify(later)
    assert decoded.count(later) == 2


async def test_refused_tokens_are_not_remembered_and_memory_is_bounded(monkeypatch):
    settings = Settings(environment="test")
    verifier = api_auth.TokenVerifier(settings)
    forged = jwt.encode(_claims(settings), "another-secret-of-32-bytes-or-more!", "HS256")
    for _ in range(2):
        with pytest.raises(api_auth.InvalidToken):
            await verifier.verify(forged)

    monkeypatch.setattr(api_auth, "VERIFIED_TOKENS_KEPT", 2)
    tokens = [
        jwt.encode(_claims(settings, sub=f"admin-{i}"), settings.jwt_dev_secret) for i in range(3)
    ]
    for token in tokens:
        await verifier.verify(token)
    assert len(verifier._verified) == 2
    assert tokens[0] not in verifier._verified  # the oldest made room
