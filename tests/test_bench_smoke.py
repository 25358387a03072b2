"""The benchmarks still run: each, tiny, as a process of its own with its own stack, ends with
status 0, prints its phases, and leaves the ledger consistent. (Their figures are not checked:
speed is measured by running them, never asserted in tests.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from bench import server_profile
from loyalty.core.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow


def _run(*args: str, timeout: float) -> str:
    # Their own embedded stack, not the tests' database or Temporal.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "TEMPORAL_", "KAFKA_"))
    }
    result = subprocess.run(
        [sys.executable, *args],
        cwd=PROJECT_ROOT,
        env={**env, "WORKFLOW_SANDBOX": "false"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.mark.parametrize("processes", ["2", "1"])
def test_ledger_benchmark_runs(processes: str) -> None:
    # The module phase in processes of their own (the default, as many as pgbench's threads),
    # and in the bench's own process.
    out = _run(
        "bench/ledger.py", "--seconds", "1", "--clients", "2", "--warmup", "0.2", "--http-floor",
        "--module-processes", processes, timeout=240,
    )  # fmt: skip
    assert f"module phase: 2 clients in {processes} process(es)" in out, out
    for phase in (
        "pgbench -N (before)",
        "ledger.earn (module)",
        "HTTP POST /wallets/{userId}/earn",
        "HTTP earn refused, no SQL (floor)",
        "pgbench -N (after)",
    ):
        assert phase in out, out
    for targeted in ("ledger.earn (module)", "HTTP POST /wallets/{userId}/earn"):
        assert f"{targeted}: CPU ceiling: " in out, out
    # A posting on its own is one call of its function: one statement, no BEGIN and COMMIT.
    assert "SQL statements per posting: ledger.earn 1 (autocommit" in out, out
    assert "invariants after the run: OK" in out, out


def test_ledger_benchmark_alternates_api_variants() -> None:
    # Two API processes of a source tree (here this checkout twice), served from its directory
    # with its own code first on the path: how an older checkout's API is measured in one run.
    out = _run(
        "bench/ledger.py", "--seconds", "1", "--clients", "1", "--warmup", "0.2", "--rounds", "1",
        "--variant", f"source={PROJECT_ROOT}", "--variant", "source=.,runtime=asyncio-h11",
        timeout=240,
    )  # fmt: skip
    assert f"[1.round] = {{'source': '{PROJECT_ROOT}'}}" in out, out
    for label in ("[1.0]", "[2.0]"):
        assert f"HTTP POST /wallets/{{userId}}/earn {label}: CPU ceiling: " in out, out
    assert "invariants after the run: OK" in out, out


def test_ledger_benchmark_compares_the_value_trigger_off_and_on() -> None:
    out = _run(
        "bench/ledger.py", "--seconds", "1", "--clients", "1", "--warmup", "0.2",
        "--module-processes", "1", "--value-trigger-rounds", "1", timeout=240,
    )  # fmt: skip
    for state in ("off", "on"):
        assert f"ledger.earn (module) [value {state} 0]" in out, out
    assert "invariants after the run: OK" in out, out


def test_value_trigger_benchmark_runs() -> None:
    out = _run("bench/value_trigger.py", "--postings", "20", "--rounds", "2", timeout=120)
    for row in ("base earn, CPU", "campaign earn, wall"):
        assert row in out, out
    assert "rows posted with the trigger off (no value): 80" in out, out


def test_ledger_parts_benchmark_runs() -> None:
    out = _run("bench/ledger_parts.py", "--postings", "40", "--rounds", "1", timeout=120)
    for part in ("pool checkout and return", "ledger.earn (module phase)", "raw asyncpg"):
        assert part in out, out


def test_tier_evaluation_benchmark_runs() -> None:
    out = _run("bench/tier_evaluation.py", "--wallets", "300", "--batch-size", "100", timeout=180)
    assert "first evaluation: " in out, out
    assert "counts match baseline:   yes" in out, out


def test_payload_codec_benchmark_runs() -> None:
    out = _run("bench/payload_codec.py", "--payloads", "400", "--rounds", "2", timeout=120)
    assert "all rounds" in out, out
    assert re.search(r"x (\d+) round trips per checkout", out), out


def test_saga_benchmark_runs() -> None:
    # With perf where it can run: the Temporal server's CPU by area, and the worker's.
    perf = server_profile.unavailable() is None
    args = ["--sagas", "6", "--concurrency", "2", *(["--perf"] if perf else [])]
    out = _run("bench/redemption.py", *args, timeout=300)
    assert "search attributes cached, workflow sandbox off (as shipped) in both workers" in out
    assert "payload encryption on" in out, out
    assert out.count(" 6 sagas in ") == 2, out  # the bare saga's run and ours
    assert "round 1: throughput" in out, out
    assert "ours' CPU ceiling: " in out, out
    assert "ledger after the run: OK" in out, out
    if perf:
        assert out.count("Temporal server, ") == 2, out
        assert out.count("visibility records (SQLite)") == 2, out
        assert "worker, " in out and "bare worker, " in out, out
        assert out.count("by thread: ") == 2, out


def test_saga_benchmark_measures_telemetry() -> None:
    out = _run(
        "bench/redemption.py", "--sagas", "4", "--concurrency", "2", "--telemetry", "off",
        "--telemetry", "tracing", timeout=300,
    )  # fmt: skip
    assert "off [1]         4 sagas in " in out and "tracing [1]     4 sagas in " in out, out
    assert "vs off" in out and "ledger after the run: OK" in out, out


def test_ledger_benchmark_measures_telemetry() -> None:
    out = _run(
        "bench/ledger.py", "--seconds", "1", "--clients", "1", "--warmup", "0.2", "--rounds", "1",
        "--variant", "telemetry=off", "--variant", "telemetry=metrics", timeout=240,
    )  # fmt: skip
    assert "earns/s" in out and "vs off" in out, out
    assert "invariants after the run: OK" in out, out


def test_span_cost_benchmark_runs() -> None:
    out = _run("bench/span_cost.py", "--spans", "200", "--rounds", "2", timeout=120)
    for way in ("off", "dropped", "recorded", "exported"):
        assert re.search(rf"^{way} +[0-9.]+ +[-+][0-9.]+ ", out, re.MULTILINE), out


def test_streams_benchmark_runs() -> None:
    out = _run(
        "bench/event_streams.py", "--events", "20", "--clients", "4", "--relay-rate", "20",
        "--relay-seconds", "1", timeout=240,
    )  # fmt: skip
    for line in ("HTTP POST /booking-events", "Kafka consumer (1 process)"):
        assert line in out, out
    assert "relay commit-to-publish at 20/s: 20 events" in out, out
