"""What the benchmarks need to measure telemetry's cost: each mode's settings, a stand-in OTLP
collector (a process that accepts and drops OTLP/HTTP exports), and a scraper that reads the
metrics endpoints as Prometheus would, only more often.

Modes: `off` (no request metrics, no SDK metrics exporter, no tracing), `metrics` (the API's
request metrics and /metrics, the worker's two Prometheus endpoints, all scraped every
SCRAPE_SECONDS), `tracing` (metrics, and every span exported over OTLP to the sink), `sampled`
(the same with one trace in SAMPLED kept: OpenTelemetry's own OTEL_TRACES_SAMPLER settings)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

import devstack
from bench import kit

MODES = ("off", "metrics", "tracing", "sampled")
SAMPLED = 10  # `sampled` keeps one trace in this many
SCRAPE_SECONDS = 5.0  # Prometheus' default is 15 s: this overstates the scrapes' share
SINK = "otlp sink"


def start_sink(stack: kit.Stack) -> str:
    """The stand-in collector's OTLP/HTTP address (a process of its own)."""
    port = devstack.free_port()
    stack.start(SINK, [sys.executable, __file__, str(port)])
    devstack.wait_for_port("127.0.0.1", port, timeout=30, name=SINK)
    return f"http://127.0.0.1:{port}"


def env_for(mode: str, sink: str | None) -> tuple[dict[str, str], list[str]]:
    """The API's and worker's settings for `mode`, and the worker metrics URLs to scrape."""
    if mode == "off":
        return {"METRICS_ENABLED": "false"}, []
    worker_port, sdk_port = devstack.free_port(), devstack.free_port()
    env = {
        "METRICS_ENABLED": "true",
        "WORKER_METRICS_PORT": str(worker_port),
        "TEMPORAL_SDK_METRICS_PORT": str(sdk_port),
    }
    if mode in ("tracing", "sampled"):
        assert sink is not None
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink
    if mode == "sampled":
        env["OTEL_TRACES_SAMPLER"] = "parentbased_traceidratio"
        env["OTEL_TRACES_SAMPLER_ARG"] = str(1 / SAMPLED)
    urls = [f"http://127.0.0.1:{port}/metrics" for port in (worker_port, sdk_port)]
    return env, urls


@contextlib.asynccontextmanager
async def scraping(urls: Sequence[str]) -> AsyncIterator[None]:
    """Scrape `urls` every SCRAPE_SECONDS while the block runs (none: nothing)."""
    if not urls:
        yield
        return

    async def loop() -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            while True:
                for url in urls:
                    (await http.get(url)).raise_for_status()
                await asyncio.sleep(SCRAPE_SECONDS)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def report(runs: dict[str, list[kit.Phase]], unit: str, *, service: Sequence[str]) -> None:
    """Each mode's CPU ms per operation (mean of its rounds): every process's, and the
    `service` groups' (the API, the worker); the cost against `off`, in ms and as a share of
    off's total."""

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    totals = {m: mean([sum(p.cpu_ms().values()) for p in phases]) for m, phases in runs.items()}
    own = {
        m: mean([sum(p.cpu_ms().get(g, 0.0) for g in service) for p in phases])
        for m, phases in runs.items()
    }
    rows = []
    for mode, phases in runs.items():
        rate = mean([p.rate for p in phases])
        cost = (
            f"{totals[mode] - totals['off']:+.2f} ms = {(totals[mode] / totals['off'] - 1):+.1%}"
            if "off" in totals and mode != "off"
            else "-"
        )
        rounds = " ".join(f"{sum(p.cpu_ms().values()):.2f}" for p in phases)
        rows.append([mode, f"{rate:.1f}", f"{totals[mode]:.2f}", f"{own[mode]:.2f}", cost, rounds])
    print()
    kit.table(
        ["mode", f"{unit}s/s", f"CPU ms/{unit}", f"of it {' + '.join(service)}", "vs off",
         "rounds"],
        rows,
    )  # fmt: skip


class _Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), _Sink).serve_forever()
