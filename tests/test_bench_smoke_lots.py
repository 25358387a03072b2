"""The point lots benchmark still runs (a file of its own, so the parallel suite runs it beside
tests/test_bench_smoke.py rather than after it)."""

from __future__ import annotations

import pytest

from tests.test_bench_smoke import _run

pytestmark = pytest.mark.slow


def test_lots_benchmark_runs() -> None:
    out = _run(
        "bench/lots.py",
        *("--wallets", "50", "--transactions", "500", "--seconds", "1", "--rounds", "1"),
        *("--clients", "2"),
        timeout=180,
    )
    assert "lots off (0011)" in out and "lots on (0012)" in out
    assert "invariants after the run: OK" in out
