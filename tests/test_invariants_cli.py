"""`python -m loyalty.ledger.invariants` exits 0 on a sound ledger and 1, naming the wallet, when a
wallet's balance disagrees with its postings, or naming the hold, when a hold is stuck open past
its expiry plus the grace.

The session's database keeps the holds of tests that place them without a saga to resolve them
(ledger and API tests, minutes to an hour of expiry), so the runs that expect exact output pass
a grace longer than any session; the stuck hold here expired long before that."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from loyalty.core.settings import PROJECT_ROOT
from loyalty.ledger.invariants import LIABILITY
from tests.ledger.stuck import stuck_hold

LONGER_THAN_A_SESSION = timedelta(days=365)
LONG_AGO = timedelta(days=3650)


def _invariants(
    database_url: str, grace: timedelta | None = LONGER_THAN_A_SESSION
) -> subprocess.CompletedProcess[str]:
    """The CLI's run; grace None: its default (HOLD_EXPIRY_GRACE_SECONDS, 300 s)."""
    given = [] if grace is None else ["--hold-grace-seconds", str(int(grace.total_seconds()))]
    return subprocess.run(
        [sys.executable, "-m", "loyalty.ledger.invariants", "--database-url", database_url, *given],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_clean_ledger_passes(
    database_url: str, make_wallet: Callable[..., Awaitable[str]]
) -> None:
    await make_wallet(250)
    result = _invariants(database_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "VIOLATION" not in result.stdout
    assert result.stdout.rstrip().endswith(": OK")
    assert "checked 12 invariants" in result.stdout


async def test_corrupted_balance_fails(
    database_url: str, owner_engine: AsyncEngine, make_wallet: Callable[..., Awaitable[str]]
) -> None:
    user = await make_wallet(250)
    # Only the owner may write a wallet directly; the service's role cannot corrupt one.
    corrupt = "UPDATE wallets SET balance = balance + :d WHERE user_id = :u"
    async with owner_engine.begin() as conn:
        await conn.execute(text(corrupt), {"d": 5, "u": user})
    try:
        result = _invariants(database_url)
    finally:
        async with owner_engine.begin() as conn:
            await conn.execute(text(corrupt), {"d": -5, "u": user})

    assert result.returncode == 1, result.stdout + result.stderr
    violations = [line for line in result.stdout.splitlines() if line.startswith("VIOLATION")]
    assert violations[:2] == [
        f"VIOLATION balance equals the sum of posted amounts: {user}: is 255, expected 250",
        f"VIOLATION available equals the points left in lots: {user}: is 250, expected 255",
    ]
    # The liability report's totals, over the whole database: 5 points short of the wallets.
    pattern = rf"VIOLATION {re.escape(LIABILITY)}: (.+): is (\d+), expected (\d+)"
    totals = [re.fullmatch(pattern, line) for line in violations[2:]]
    assert [(m[1], int(m[3]) - int(m[2])) for m in totals if m] == [
        ("outstanding points", 5),
        ("points in lots", 5),
    ], violations
    assert _invariants(database_url).returncode == 0


async def test_stuck_hold_fails(
    database_url: str, engine: AsyncEngine, make_wallet: Callable[..., Awaitable[str]]
) -> None:
    user = await make_wallet(250)
    async with stuck_hold(engine, user, expired_ago=LONG_AGO, points=40) as held:
        by_default = _invariants(database_url, grace=None)
        exact = _invariants(database_url)

    line = f"VIOLATION no hold is open past its expiry plus the grace: {held.hold_id}: is open: 40"
    assert by_default.returncode == 1, by_default.stdout + by_default.stderr
    assert any(v.startswith(line) for v in by_default.stdout.splitlines())
    assert exact.returncode == 1, exact.stdout + exact.stderr
    violations = [v for v in exact.stdout.splitlines() if v.startswith("VIOLATION")]
    expired = held.expires_at.isoformat(timespec="seconds")
    deadline = (held.expires_at + LONGER_THAN_A_SESSION).isoformat(timespec="seconds")
    assert violations == [
        f"{line} points of {user} for booking {held.booking_id}, expired {expired}, "
        f"expected captured or released by {deadline}"
    ]
    assert _invariants(database_url).returncode == 0  # released on the way out
