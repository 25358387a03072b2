"""`python -m loyalty.ledger.invariants` exits 0 on a sound ledger and 1, naming the wallet, when a
wallet's balance disagrees with its postings."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Awaitable, Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from loyalty.core.settings import PROJECT_ROOT


def _invariants(database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loyalty.ledger.invariants", "--database-url", database_url],
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


async def test_corrupted_balance_fails(
    database_url: str, engine: AsyncEngine, make_wallet: Callable[..., Awaitable[str]]
) -> None:
    user = await make_wallet(250)
    corrupt = "UPDATE wallets SET balance = balance + :d WHERE user_id = :u"
    async with engine.begin() as conn:
        await conn.execute(text(corrupt), {"d": 5, "u": user})
    try:
        result = _invariants(database_url)
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(corrupt), {"d": -5, "u": user})

    assert result.returncode == 1, result.stdout + result.stderr
    violations = [line for line in result.stdout.splitlines() if line.startswith("VIOLATION")]
    assert violations == [
        f"VIOLATION balance equals the sum of posted amounts: {user}: is 255, expected 250"
    ]
    assert _invariants(database_url).returncode == 0
