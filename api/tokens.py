"""Mint development tokens signed with JWT_DEV_SECRET (HS256).

    python -m api.tokens --sub user-1 --scope wallet:self [--ttl 3600]
    python -m api.tokens --service          # booking service (loyalty:service)
    python -m api.tokens --admin --sub ops  # backoffice (loyalty:admin)

Prints the token. Refuses to run with ENVIRONMENT=production, where tokens come from the
identity provider (JWT_JWKS_URL)."""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Iterable

import jwt

from api.auth import SCOPE_ADMIN, SCOPE_SERVICE, SCOPES
from loyalty.core.settings import Settings


def mint_token(
    settings: Settings,
    *,
    sub: str,
    scopes: Iterable[str],
    ttl: int = 3600,
    now: int | None = None,
    **claims: object,
) -> str:
    issued = int(time.time()) if now is None else now
    payload = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": sub,
        "scope": " ".join(scopes),
        "iat": issued,
        "exp": issued + ttl,
        "jti": uuid.uuid4().hex,
        **claims,
    }
    return jwt.encode(payload, settings.jwt_dev_secret, algorithm="HS256")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sub", help="subject: the user id for wallet:self")
    parser.add_argument(
        "--scope", action="append", default=[], help=f"repeatable; known: {', '.join(SCOPES)}"
    )
    parser.add_argument("--ttl", type=int, default=3600, help="seconds until expiry")
    parser.add_argument("--service", action="store_true", help=f"add {SCOPE_SERVICE}")
    parser.add_argument("--admin", action="store_true", help=f"add {SCOPE_ADMIN}")
    args = parser.parse_args(argv)
    settings = Settings()
    if settings.environment == "production":
        parser.error("production tokens come from the identity provider, not this command")
    scopes = [s for value in args.scope for s in value.split()]
    if args.service:
        scopes.append(SCOPE_SERVICE)
    if args.admin:
        scopes.append(SCOPE_ADMIN)
    if not scopes:
        parser.error("give --scope, --service or --admin")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        parser.error(f"unknown scope(s): {', '.join(unknown)}")
    sub = args.sub or ("booking-service" if args.service else "admin" if args.admin else None)
    if sub is None:
        parser.error("--sub is required for customer tokens")
    if args.ttl <= 0:
        parser.error("--ttl must be positive")
    print(mint_token(settings, sub=sub, scopes=dict.fromkeys(scopes), ttl=args.ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
