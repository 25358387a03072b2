"""The benchmarks of the books (point lots, expiry, the liability report) still run: a file of
their own, so the parallel suite runs them beside tests/test_bench_smoke.py rather than after it."""

from __future__ import annotations

import re

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


def test_expiry_benchmark_runs() -> None:
    out = _run(
        "bench/expiry.py", "--wallets", "300", "--transactions", "1500", "--due-share", "0.2",
        "--batch-size", "50", timeout=180,
    )  # fmt: skip
    for line in ("baseline (one SQL statement, read-only): ", "expiry phase: ", "worker memory: "):
        assert line in out, out
    assert "invariants after:        OK" in out, out
    assert "counts match baseline:   yes" in out, out


def test_liability_benchmark_runs() -> None:
    out = _run(
        "bench/liability.py", "--wallets", "300", "--transactions", "3000", "--rounds", "1",
        "--past-days", "30", timeout=120,
    )  # fmt: skip
    assert "invariants after seeding: OK" in out, out
    for row in ("now ", "30 days ago "):
        assert re.search(rf"^{row} +[\d,]+ +[\d,]+ +\d+%$", out, re.MULTILINE), out
    assert "figures match: yes" in out, out
